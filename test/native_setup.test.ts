// The committed tarball that npm installs (tools/minicpmv-native-setup-*.tgz)
// must hold exactly the sources in tools/native-setup/: edit, then
// `npm run pack:native-setup` and `npm install`.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './helpers/paths.ts';

/** Files of a (ustar) tar archive: name -> contents. */
function untar(buf: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (let off = 0; off + 512 <= buf.length;) {
    const header = buf.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    const prefix = header.toString('utf8', 345, 500).replace(/\0.*$/s, '');
    const size = parseInt(header.toString('utf8', 124, 136).replace(/\0.*$/s, '').trim(), 8);
    const type = String.fromCharCode(header[156]);
    if (type === '0' || type === '\0') files.set(prefix ? `${prefix}/${name}` : name, buf.subarray(off + 512, off + 512 + size));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

describe('native setup package', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
  const spec: string = pkg.dependencies['minicpmv-native-setup'];

  it('is a tarball dependency (so npm runs its preinstall before tfjs-node installs)', () => {
    expect(spec).toMatch(/^file:tools\/minicpmv-native-setup-[\d.]+\.tgz$/);
    expect(pkg.optionalDependencies['@tensorflow/tfjs-node']).toBe(pkg.dependencies['@tensorflow/tfjs-core']);
  });

  it('the tarball holds exactly tools/native-setup', () => {
    const files = untar(zlib.gunzipSync(fs.readFileSync(path.join(repoRoot, spec.slice('file:'.length)))));
    const src = path.join(repoRoot, 'tools', 'native-setup');
    const names = fs.readdirSync(src).sort();
    expect([...files.keys()].map((k) => k.replace(/^package\//, '')).sort()).toEqual(names);
    for (const n of names) expect(files.get(`package/${n}`)!.equals(fs.readFileSync(path.join(src, n))), n).toBe(true);
  });

  it('stages the headers the binding and native/ include, transitively', () => {
    const setup = fs.readFileSync(path.join(repoRoot, 'tools', 'native-setup', 'setup.cjs'), 'utf8');
    for (const p of ['tensorflow/include/tensorflow/c/', 'tensorflow/include/xla/tsl/c/', 'tensorflow/include/tsl/platform/',
      'tensorflow/include/tensorflow/core/platform/', 'tensorflow/include/tensorflow/core/common_runtime/next_pluggable_device/c/',
      'tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2']) expect(setup).toContain(p);
  });
});
