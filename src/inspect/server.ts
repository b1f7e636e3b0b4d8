// The inspect page's HTTP server: node:http on 127.0.0.1 only, four fixed paths (and an empty favicon), nothing else. It binds
// before the model runs (a port in use fails at once) and answers 503 until the data is ready.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UserError } from '../errors.ts';
import { pageAssets, servedPage, type PageAssets } from './page.ts';

/** The port cannot be used: one line for the user, exit code 2. */
export class PortError extends UserError {}

export interface InspectServer {
  url: string;
  port: number;
  /** Serves the page with this data (JSON text) from now on. */
  ready(dataJson: string): void;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '/': 'text/html; charset=utf-8',
  '/index.html': 'text/html; charset=utf-8',
  '/inspect.js': 'text/javascript; charset=utf-8',
  '/inspect.css': 'text/css; charset=utf-8',
  '/data.json': 'application/json; charset=utf-8',
};

// The page loads only its own files (and the image as a data: URL).
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'";

export async function startServer(port: number, assets: PageAssets = pageAssets()): Promise<InspectServer> {
  const host = '127.0.0.1';
  let data: string | null = null;
  const html = servedPage();
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const bound = (server.address() as AddressInfo | null)?.port;
    // Only this machine's names for this server (a page elsewhere cannot reach it through DNS rebinding).
    const okHost = [`127.0.0.1:${bound}`, `localhost:${bound}`].includes(req.headers.host ?? '');
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff',
        'Content-Security-Policy': CSP, 'Referrer-Policy': 'no-referrer' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (!okHost) return send(421, 'text/plain; charset=utf-8', 'wrong host\n');
    if (path === '/favicon.ico') return send(204, 'image/x-icon', '');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain; charset=utf-8', 'only GET\n');
    const type = TYPES[path];
    if (!type) return send(404, 'text/plain; charset=utf-8', 'not found\n');
    if (path === '/data.json' && data === null) return send(503, 'text/plain; charset=utf-8', 'the model is still running; reload in a moment\n');
    const body = path === '/inspect.js' ? assets.js : path === '/inspect.css' ? assets.css : path === '/data.json' ? data! : html;
    send(200, type, body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'EADDRINUSE'
        ? new PortError(`port ${port} on ${host} is in use; pass another --port (or --port 0 for any free one)`)
        : e.code === 'EACCES' ? new PortError(`port ${port} on ${host}: permission denied; pass a port above 1023`)
          : new PortError(`cannot listen on ${host}:${port} (${e.code ?? e.message})`));
    });
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${actual}/`,
    port: actual,
    ready: (json) => { data = json; },
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
