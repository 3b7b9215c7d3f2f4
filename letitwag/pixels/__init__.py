"""Images decoded and preprocessed on the evaluation device, as the model's own preprocessing does.

Used by the harness (``--decode``) and the frequency engine's image tagging; it imports neither.

* ``recipe`` — a model's preprocessing (open_clip's torchvision transform, a transformers CLIP or
  SigLIP image processor) read as a ``PixelRecipe``, or refused with the reason.
* ``resample`` / ``preprocess`` — PIL's antialiased resize, centre crop and normalisation on
  batches of decoded tensors (``TensorPreprocess``), equal to the PIL path on the same pixels.
* ``jpeg`` — which images the device decodes (baseline JPEGs), read from the header.
* ``decoder`` — ``--decode auto|cpu|gpu`` (``resolve_decode``) and ``DeviceDecoder``: batched
  ``torchvision.io.decode_jpeg`` on the device with a per-image fallback to the CPU path.
"""

# Part of the feature cache's identity for device-decoded features: bump it when the tensor
# path's output changes, so cached features of the old path are not reused.
PIPELINE_VERSION = 1
