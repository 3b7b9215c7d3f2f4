// Runs a callback with a headless Chromium context (Debian's /usr/bin/chromium, or
// $LETITWAG_CHROMIUM) on a throw-away profile, closed and deleted afterwards.
// Shared by the check_*.mjs scripts so that every test drives the browser the same way.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export async function withChromium(use) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "letitwag-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.LETITWAG_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  try {
    return await use(context);
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}
