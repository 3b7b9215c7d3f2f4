"""The evaluation harness: zero-shot classification and text-to-image scoring on Let it Wag!."""
