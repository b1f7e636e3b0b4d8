// `npm install` step: builds native/ (the project's TensorFlow ops,
// native/minicpmv_ops.cc) against the libtensorflow of @tensorflow/tfjs-node.
// Skipped, with a message, where tfjs-node or its libtensorflow is missing;
// never fails the install (the model then runs on TF.js's own kernels only).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const log = (s) => console.error(`[minicpmv ops] ${s}`);
/** tfjs-node's folder: in this package's node_modules, or hoisted into the project that installed this one. */
function tfjsNodeDir() {
  try {
    return path.dirname(createRequire(path.join(root, 'package.json')).resolve('@tensorflow/tfjs-node/package.json'));
  } catch {
    return path.join(root, 'node_modules', '@tensorflow', 'tfjs-node');
  }
}
const tfjsNode = tfjsNodeDir();
const header = path.join(tfjsNode, 'deps', 'include', 'tensorflow', 'c', 'kernels.h');

if (process.env.MINICPMV_SKIP_NATIVE === '1') {
  log('MINICPMV_SKIP_NATIVE=1: not building native/');
} else if (!fs.existsSync(path.join(tfjsNode, 'deps', 'lib')) || !fs.existsSync(header)) {
  log('no libtensorflow under @tensorflow/tfjs-node/deps: not building native/ (the model runs on TF.js kernels only)');
} else {
  const gyp = process.env.npm_config_node_gyp;
  const [cmd, args] = gyp ? [process.execPath, [gyp]] : ['npx', ['--yes', 'node-gyp']];
  const r = spawnSync(cmd, [...args, 'rebuild', '--directory', path.join(root, 'native')], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status === 0) log('built native/build/Release/minicpmv_ops.node');
  else log(`could not build native/ (the model runs on TF.js kernels only): ${(r.stderr || '').split('\n').filter((l) => /error/i.test(l)).slice(0, 2).join(' | ')}`);
}
