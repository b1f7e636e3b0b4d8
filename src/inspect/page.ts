// The inspect page: one HTML shell, the page's script and styles (src/inspect/assets/), and the data. Served,
// the shell links /inspect.css and /inspect.js and the script fetches /data.json; with --static all three
// are inlined into one file that opens from file:// with no network.
import fs from 'node:fs';
import type { InspectData } from './collect.ts';

const asset = (name: string): string => fs.readFileSync(new URL(`./assets/${name}`, import.meta.url), 'utf8');

export interface PageAssets {
  js: string;
  css: string;
}

export function pageAssets(): PageAssets {
  return { js: asset('inspect.js'), css: asset('inspect.css') };
}

/** The data as JSON (non-finite numbers become null, which the page shows as "-"). */
export function dataJson(data: InspectData): string {
  return JSON.stringify(data);
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function shell(title: string, head: string, tail: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
${head}
</head>
<body>
<main id="app"><p>Loading the inspection&hellip;</p><noscript>This page draws its views with JavaScript; please enable it.</noscript></main>
${tail}
</body></html>
`;
}

/** The page as served: assets and data come from the same server. */
export function servedPage(): string {
  return shell('minicpmv inspect', '<link rel="stylesheet" href="inspect.css">', '<script src="inspect.js"></script>');
}

/** One self-contained file: styles, script and data inlined. */
export function staticPage(data: InspectData, assets: PageAssets = pageAssets()): string {
  // Inside <script>, only "</script" (and "<!--") could end or bend the element: JSON escapes every "<".
  const json = dataJson(data).replace(/</g, '\\u003c');
  if (/<\/script|<!--/i.test(assets.js)) throw new Error('inspect.js must not contain "</script" or "<!--" (it is inlined)');
  if (/<\/style/i.test(assets.css)) throw new Error('inspect.css must not contain "</style" (it is inlined)');
  return shell('minicpmv inspect', `<style>${assets.css}</style>`,
    `<script type="application/json" id="inspect-data">${json}</script>\n<script>${assets.js}</script>`);
}
