// Loads the trust page in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core), once with JavaScript on and once with it off, saves a screenshot, and prints
// what it saw as one JSON line. The Rust test (tests/it/trust_page.rs) makes every judgement.
//
// usage: node trust_page.js URL SCREENSHOT_PATH
const { chromium } = require('playwright-core');

const [url, screenshot] = process.argv.slice(2);
// A hung browser must fail the test, not hold it for ever.
setTimeout(() => {
  console.error('trust_page.js: no answer within 90 s');
  process.exit(3);
}, 90_000).unref();

// Everything the page and the browser said while it loaded.
function watch(page) {
  const seen = { console: [], pageErrors: [], requests: [], failed: [] };
  page.on('console', (m) => seen.console.push({ type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => seen.pageErrors.push(String(e)));
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('requestfailed', (r) => seen.failed.push(`${r.url()}: ${r.failure()?.errorText}`));
  return seen;
}

// The rows as the DOM holds them (read by Playwright, which works with page scripts disabled).
async function rows(page) {
  return page.locator('tr[data-control]').evaluateAll((trs) =>
    trs.map((tr) => ({
      id: tr.dataset.control,
      cells: Array.from(tr.cells, (td) => td.textContent),
    })),
  );
}

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    // The tests run as root, where Chromium's sandbox cannot start.
    args: ['--no-sandbox'],
  });
  try {
    const out = { browser: browser.version() };

    const on = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await on.newPage();
    const seen = watch(page);
    const res = await page.goto(url, { waitUntil: 'load' });
    out.status = res.status();
    out.headers = await res.allHeaders();
    out.rows = await rows(page);
    out.scripts = await page.evaluate(() => document.scripts.length);
    out.declaredHeading = await page.locator('#declarations h2').textContent();
    out.declarations = await page.locator('#declarations').textContent();
    out.generated = await page.locator('#generated').textContent();
    // Whether the stylesheet applied: the policy allows it by hash, so a wrong hash shows here.
    out.tableBorderCollapse = await page
      .locator('#control-table')
      .evaluate((t) => getComputedStyle(t).borderCollapse);
    await page.screenshot({ path: screenshot, fullPage: true });
    Object.assign(out, seen);

    const off = await browser.newContext({ javaScriptEnabled: false });
    const quiet = await off.newPage();
    const seenOff = watch(quiet);
    const resOff = await quiet.goto(url, { waitUntil: 'load' });
    out.noJs = {
      status: resOff.status(),
      rows: await rows(quiet),
      scripts: await quiet.locator('script').count(),
      ...seenOff,
    };
    console.log(JSON.stringify(out));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
