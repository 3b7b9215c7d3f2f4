// Drives a real Chromium (Debian's /usr/bin/chromium) through the built leaderboard site.
// Usage: node check_site.mjs BASE_URL FILE_URL HOSTILE_NAME
// Prints one JSON object with what it observed; the Python test (test_browser.py) asserts on it.
import { withChromium } from "./chromium.mjs";

const [baseUrl, fileUrl, hostileName] = process.argv.slice(2);
const result = { dialogs: [], consoleErrors: [], requestsOutside: [] };
await withChromium(async (context) => {
  const page = await context.newPage();
  page.on("dialog", async (dialog) => { result.dialogs.push(dialog.message()); await dialog.dismiss(); });
  page.on("console", (message) => { if (message.type() === "error") { result.consoleErrors.push(message.text()); } });
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(baseUrl) && !url.startsWith("file://")) { result.requestsOutside.push(url); }
  });

  await page.goto(`${baseUrl}/index.html`);
  await page.waitForSelector("#board tbody tr");
  const modelNames = () => page.$$eval("#board tbody tr:not([hidden]) td:nth-child(2)", (cells) => cells.map((c) => c.textContent.trim()));
  const top1Values = () => page.$$eval("#board tbody tr:not([hidden]) td:nth-child(4)", (cells) => cells.map((c) => c.dataset.v));
  result.initialNames = await modelNames();
  result.initialTop1 = await top1Values();

  await page.click("#board thead th:nth-child(2) button");
  result.namesAfterModelClick = await modelNames();
  result.expectedNameOrder = [...result.initialNames].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
  result.modelSortState = await page.getAttribute("#board thead th:nth-child(2)", "aria-sort");
  await page.click("#board thead th:nth-child(4) button");
  await page.click("#board thead th:nth-child(4) button");
  result.top1AfterTwoClicks = await top1Values();
  result.top1SortState = await page.getAttribute("#board thead th:nth-child(4)", "aria-sort");

  await page.fill("#filter", "siglip");
  result.filteredNames = await modelNames();
  result.shownText = await page.textContent("#shown");
  await page.fill("#filter", "");
  result.unfilteredCount = (await modelNames()).length;

  result.hostileCellTexts = await page.$$eval("#board tbody td:nth-child(2) a", (links, name) =>
    links.filter((a) => a.textContent === name).map((a) => a.textContent), hostileName);
  result.scriptTagsInBody = await page.$$eval("body script", (scripts) => scripts.length);

  await page.click(`#board tbody td:nth-child(2) a >> text=${JSON.stringify(hostileName)}`);
  await page.waitForSelector("#model-name");
  result.hostilePageUrl = page.url();
  result.hostilePageTitle = await page.textContent("#model-name");

  await page.goto(`${baseUrl}/index.html`);
  await page.click("#board tbody tr:first-child td:nth-child(2) a");
  await page.waitForSelector("#concepts tbody tr");
  result.modelPageUrl = page.url();
  result.modelPageConcepts = await page.$$eval("#concepts tbody tr", (rows) => rows.length);
  result.modelPageFigurePoints = await page.$$eval("svg .point.concept", (points) => points.length);

  const filePage = await context.newPage();
  filePage.on("dialog", async (dialog) => { result.dialogs.push(dialog.message()); await dialog.dismiss(); });
  await filePage.goto(fileUrl);
  await filePage.waitForSelector("#shown");
  await filePage.waitForFunction(() => document.getElementById("shown").textContent.length > 0);
  result.fileShownText = await filePage.textContent("#shown");
});
process.stdout.write(JSON.stringify(result) + "\n");
