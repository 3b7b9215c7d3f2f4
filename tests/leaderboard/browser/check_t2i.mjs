// Drives a real Chromium through the text-to-image tables of a built site (opened from file://).
// Usage: node check_t2i.mjs FILE_URL
// Prints one JSON object with what it observed; test_t2i.py asserts on it.
import { withChromium } from "./chromium.mjs";

const [fileUrl] = process.argv.slice(2);
const result = { consoleErrors: [], tables: [] };
await withChromium(async (context) => {
  const page = await context.newPage();
  page.on("console", (message) => { if (message.type() === "error") { result.consoleErrors.push(message.text()); } });
  await page.goto(fileUrl);
  const ids = await page.$$eval("table.t2i-board", (tables) => tables.map((t) => t.id));
  for (const id of ids) {
    const column = (n) => page.$$eval(`#${id} tbody tr td:nth-child(${n})`, (cells) => cells.map((c) => c.dataset.v ?? c.textContent.trim()));
    const seen = { id, judge: await page.getAttribute(`#${id}`, "data-judge"), initialRanks: await column(1) };
    await page.click(`#${id} thead th:nth-child(7) button`);  // Expected CLIPScore
    seen.clipAfterOneClick = await column(7);
    seen.clipState = await page.getAttribute(`#${id} thead th:nth-child(7)`, "aria-sort");
    await page.click(`#${id} thead th:nth-child(7) button`);
    seen.clipAfterTwoClicks = await column(7);
    await page.click(`#${id} thead th:nth-child(2) button`);  // Model
    seen.namesAfterModelClick = await column(2);
    result.tables.push(seen);
  }
});
console.log(JSON.stringify(result));
