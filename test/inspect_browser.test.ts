// `minicpmv inspect` in a real browser: playwright-core drives the system Chromium (installed by .ci/run),
// offline, with a fresh profile. The served page (the real command, as a user runs it) and the --static
// file (from file://) must both draw the heat map, change it when a query is clicked, and show in the logit
// lens's last layer the token greedy decoding picks. A screenshot is saved (INSPECT_SCREENSHOT=FILE to keep
// one, e.g. for docs/inspect.png). Without Chromium the tests are skipped, saying why; with it
// they run, under CI=true too.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../src/backend/index.ts';
import { loadImage } from '../src/image/decode.ts';
import { ChatSession } from '../src/model/chat.ts';
import { loadModel, loadTokenizer } from '../src/model/load.ts';
import { repoRoot } from './helpers/paths.ts';
import { chromium as chromiumReq, findChromium, named, unmet } from './helpers/requires.ts';

const W = path.join(repoRoot, 'weights', 'tiny');
const IMAGE = path.join(repoRoot, 'examples', 'red_ball.png');
const PROMPT = 'What is in the image?';
const BIN = path.join(repoRoot, 'bin', 'minicpmv.js');

const chromium = findChromium();
const browser = chromiumReq();

const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

describe.skipIf(unmet(browser))(named('inspect page in headless Chromium', browser), () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'minicpmv-inspect-browser-'));
  let greedyToken: number;
  let greedyText: string;
  let server: ChildProcessWithoutNullStreams | undefined;
  let url: string;
  // playwright-core's types, loaded when the test runs (a devDependency).
  let context: import('playwright-core').BrowserContext;

  beforeAll(async () => {
    // The model's greedy first token, from the library (not from inspect).
    await initBackend();
    const model = loadModel(W), tok = loadTokenizer(W);
    const session = new ChatSession(model, tok, loadImage(IMAGE));
    try {
      greedyToken = session.ask(PROMPT, { mode: 'greedy', maxNewTokens: 1 }).tokens[0];
      greedyText = tok.decode([greedyToken]);
    } finally {
      session.dispose();
      model.dispose();
    }
    // The real command on any free port; its only stdout line is the URL.
    server = spawn(process.execPath, [BIN, 'inspect', '--model', W, '--image', IMAGE, '--prompt', PROMPT, '--port', '0'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    server.stderr.on('data', (b) => { err += b; });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server!.stdout.on('data', (b) => {
        out += b;
        const m = /^(http:\/\/127\.0\.0\.1:\d+\/)$/m.exec(out);
        if (m) resolve(m[1]);
      });
      server!.on('exit', (code) => reject(new Error(`inspect exited (${code}) before serving: ${err}`)));
    });
    const { chromium: pw } = await import('playwright-core');
    context = await pw.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: chromium, headless: true, args: LAUNCH_ARGS, viewport: { width: 1280, height: 900 },
    });
  }, 180_000);

  afterAll(async () => {
    await context?.close();
    if (server && server.exitCode === null) {
      const exited = new Promise<number | null>((r) => server!.on('exit', (c) => r(c)));
      server.kill('SIGTERM');
      expect(await exited).toBe(0); // Ctrl-C / SIGTERM stops the server cleanly
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  /** Opens a page and runs every check; returns the requests it made. */
  async function checkPage(address: string, shot: string): Promise<string[]> {
    const page = await context.newPage();
    const requests: string[] = [], errors: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    await page.goto(address);
    await page.waitForSelector('body[data-ready]', { timeout: 60_000 });
    expect(await page.evaluate(() => document.body.dataset.ready)).toBe('true');
    expect(errors).toEqual([]);

    // 1. The heat map: drawn (many coloured, non-transparent pixels), and another query draws another map.
    // Counted in the page: opaque pixels, distinct colours, and pixels that differ from the last call's.
    const heat = () => page.evaluate(() => {
      const c = document.getElementById('attn-heat') as HTMLCanvasElement;
      const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      const w = window as unknown as { lastHeat?: Uint8ClampedArray };
      let opaque = 0, changed = 0;
      const colours = new Set<number>();
      for (let i = 0; i < px.length; i += 4) {
        if (px[i + 3] > 0) opaque++;
        colours.add(((px[i] * 256 + px[i + 1]) * 256 + px[i + 2]) * 256 + px[i + 3]);
        if (w.lastHeat && (px[i] !== w.lastHeat[i] || px[i + 1] !== w.lastHeat[i + 1] || px[i + 2] !== w.lastHeat[i + 2] || px[i + 3] !== w.lastHeat[i + 3])) changed++;
      }
      w.lastHeat = px;
      return { opaque, colours: colours.size, changed, pixels: c.width * c.height };
    });
    const before = await heat();
    expect(before.pixels).toBe(448 * 448);
    expect(before.opaque).toBeGreaterThan(before.pixels * 0.5);
    expect(before.colours).toBeGreaterThan(20);
    await page.click('.query-grid button[data-query="37"]');
    expect(await page.getAttribute('#attn-heat', 'data-query')).toBe('37');
    const after = await heat();
    expect(after.colours).toBeGreaterThan(20);
    expect(after.changed).toBeGreaterThan(after.pixels * 0.1);
    expect(await page.textContent('#attn-title')).toMatch(/^query 37/);

    // 2. The logit lens: the last layer at the last prompt position reads the greedy token.
    const col = await page.$$eval('#lens-table th[data-kind="prompt"]', (ths) => ths[ths.length - 1].getAttribute('data-col'));
    const cell = page.locator(`#lens-table tr[data-final="true"] td[data-col="${col}"]`);
    expect(Number(await cell.getAttribute('data-top1'))).toBe(greedyToken);
    expect((await cell.locator('.t').textContent())!.replace(/\u2423/g, ' ')).toBe(greedyText);
    await cell.click();
    expect(await page.textContent('#lens-detail')).toMatch(/layer 1 = output/);

    // 3. and 4.: the activation chart and the beam graph are drawn.
    expect(await page.locator('#journey-chart circle').count()).toBeGreaterThan(10);
    expect(await page.locator('#beam-graph g[data-step]').count()).toBeGreaterThan(3);

    await page.screenshot({ path: shot });
    expect(fs.readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    if (process.env.INSPECT_SCREENSHOT) fs.copyFileSync(shot, process.env.INSPECT_SCREENSHOT);
    await page.close();
    return requests;
  }

  it('the served page: heat map, query click, lens top-1 = greedy token; only its own server is asked', async () => {
    const requests = await checkPage(url, path.join(tmp, 'served.png'));
    expect(requests.length).toBeGreaterThan(0);
    for (const r of requests) expect(r.startsWith(url) || r.startsWith('data:'), r).toBe(true);
    expect(requests).toContain(`${url}data.json`);
  });

  it('the --static file passes the same checks from file://, with no request but itself', async () => {
    const file = path.join(tmp, 'inspect.html');
    const child = spawn(process.execPath, [BIN, 'inspect', '--model', W, '--image', IMAGE, '--prompt', PROMPT, '--static', file], { stdio: 'ignore' });
    expect(await new Promise((r) => child.on('close', r))).toBe(0);
    const href = pathToFileURL(file).href;
    const requests = await checkPage(href, path.join(tmp, 'static.png'));
    for (const r of requests) expect(r === href || r.startsWith('data:'), r).toBe(true);
  }, 120_000);
});
