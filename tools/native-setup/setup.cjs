'use strict';
// Runs as the `preinstall` script of a dependency of minicpmv-ts. npm runs every
// dependency's preinstall before any dependency's install script, so this runs
// after @tensorflow/tfjs-node is unpacked and before its own install script
// (scripts/install.js) tries to download libtensorflow.
//
// 1. If tfjs-node's binding already loads, nothing to do.
// 2. Official path: if the libtensorflow archive URL answers, leave the rest to
//    tfjs-node's own install script.
// 3. Fallback: the TensorFlow pip wheel (tensorflow-cpu) ships the same C API
//    (libtensorflow_cc.so.2, libtensorflow_framework.so.2, headers). Extract the
//    few files needed once into a cache directory, link them under tfjs-node's
//    deps/, and tfjs-node's install script then finds deps/lib and builds the
//    binding from source with node-gyp.
// Never fails the install: on any problem it prints why and exits 0; if
// tfjs-node's own install then fails, npm drops that optional dependency and
// minicpmv-ts runs on the pure-JS `cpu` backend.
const fs = require('fs');
const os = require('os');
const path = require('path');
const https = require('https');
const cp = require('child_process');

const TF_WHEEL_VERSION = process.env.MINICPMV_TF_WHEEL_VERSION || '2.21.0';
const LIBTF_OFFICIAL_VERSION = '2.9.1'; // what tfjs-node 4.22 asks for
const log = (msg) => console.error(`[minicpmv native setup] ${msg}`);

function tfjsNodeDir() {
  // The nearest node_modules above this package that holds tfjs-node: node_modules/minicpmv-native-setup
  // in a checkout of minicpmv-ts; node_modules/minicpmv-ts/node_modules/minicpmv-native-setup (bundled)
  // when a project installed minicpmv-ts, with tfjs-node hoisted into the project's node_modules.
  for (let d = path.dirname(__dirname); d !== path.dirname(d); d = path.dirname(d)) {
    if (path.basename(d) !== 'node_modules') continue;
    const dir = path.join(d, '@tensorflow', 'tfjs-node');
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
  }
  return null;
}

function cacheRoot() {
  if (process.env.MINICPMV_CACHE) return process.env.MINICPMV_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'minicpmv-ts');
}

function bindingLoads(dir) {
  const binding = path.join(dir, 'lib', `napi-v${process.versions.napi >= 8 ? 8 : process.versions.napi}`, 'tfjs_binding.node');
  if (!fs.existsSync(binding)) return false;
  const r = cp.spawnSync(process.execPath, ['-e', `require(${JSON.stringify(binding)})`], { stdio: 'ignore' });
  return r.status === 0;
}

function officialUrl() {
  const host = process.env.TFJS_NODE_CDN_STORAGE || process.env.npm_config_TFJS_NODE_CDN_STORAGE ||
    process.env.CDN_STORAGE || 'https://storage.googleapis.com/';
  const base = process.env.TFJS_NODE_BASE_URI || process.env.npm_config_TFJS_NODE_BASE_URI ||
    `${host}tensorflow/libtensorflow/libtensorflow-`;
  return `${base}cpu-linux-x86_64-${LIBTF_OFFICIAL_VERSION}.tar.gz`;
}

function officialReachable(url, timeoutMs = 5000) {
  if (process.env.MINICPMV_SKIP_OFFICIAL === '1') return Promise.resolve(false);
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok) => { if (!done) { done = true; resolve(ok); } };
    try {
      const req = https.request(url, { method: 'HEAD', timeout: timeoutMs }, (res) => {
        finish(res.statusCode === 200); res.resume();
      });
      req.on('timeout', () => { req.destroy(); finish(false); });
      req.on('error', () => finish(false));
      req.end();
    } catch { finish(false); }
  });
}

function python() {
  for (const exe of [process.env.MINICPMV_PYTHON, 'python3', 'python'].filter(Boolean)) {
    const r = cp.spawnSync(exe, ['-c', 'import zipfile, sys; print(sys.version_info[0])'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() === '3') return exe;
  }
  return null;
}

// Files taken from the wheel: the two shared libraries and the C API headers
// with their own includes: those of tfjs-node's binding (c_api.h, eager/c_api.h)
// and of this project's kernel, native/minicpmv_ops.cc (kernels.h, ops.h).
const WHEEL_PREFIXES = [
  'tensorflow/libtensorflow_cc.so.2',
  'tensorflow/libtensorflow_framework.so.2',
  'tensorflow/include/tensorflow/c/',
  'tensorflow/include/tensorflow/core/platform/',
  'tensorflow/include/tensorflow/core/common_runtime/next_pluggable_device/c/',
  'tensorflow/include/tsl/platform/',
  'tensorflow/include/tensorflow/tsl/platform/ctstring',
  'tensorflow/include/xla/tsl/c/',
];
// Bumped when WHEEL_PREFIXES changes, so an older cache is extracted again.
const CACHE_LAYOUT = 2;

function stageCache(py) {
  const dir = path.join(cacheRoot(), `libtensorflow-${TF_WHEEL_VERSION}`);
  const marker = path.join(dir, '.complete');
  const stamp = `tensorflow-cpu ${TF_WHEEL_VERSION} layout ${CACHE_LAYOUT}\n`;
  if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === stamp) { log(`using cached libtensorflow ${TF_WHEEL_VERSION} in ${dir}`); return dir; }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(cacheRoot(), { recursive: true });
  const tmp = fs.mkdtempSync(path.join(cacheRoot(), '.staging-'));
  try {
    let wheel = process.env.MINICPMV_TF_WHEEL;
    if (!wheel) {
      log(`fetching the tensorflow-cpu==${TF_WHEEL_VERSION} wheel with pip (about 270 MB)`);
      const r = cp.spawnSync(py, ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--retries', '0',
        '--timeout', '15', '--disable-pip-version-check', '-q', `tensorflow-cpu==${TF_WHEEL_VERSION}`, '-d', tmp],
        { stdio: ['ignore', 'inherit', 'inherit'] });
      if (r.status !== 0) throw new Error(`pip could not download tensorflow-cpu==${TF_WHEEL_VERSION}`);
      wheel = fs.readdirSync(tmp).filter((f) => f.endsWith('.whl')).map((f) => path.join(tmp, f))[0];
      if (!wheel) throw new Error('pip reported success but left no wheel');
    }
    log(`extracting libtensorflow from ${path.basename(wheel)}`);
    const script = [
      'import sys, zipfile, os, shutil',
      'whl, out, prefixes = sys.argv[1], sys.argv[2], sys.argv[3:]',
      'z = zipfile.ZipFile(whl)',
      'n = 0',
      'for name in z.namelist():',
      '    if name.endswith("/") or not any(name.startswith(p) for p in prefixes): continue',
      '    rel = name[len("tensorflow/"):]',
      '    dest = os.path.join(out, "lib" if rel.startswith("lib") else "", rel)',
      '    os.makedirs(os.path.dirname(dest), exist_ok=True)',
      '    with z.open(name) as src, open(dest, "wb") as dst: shutil.copyfileobj(src, dst, 1 << 22)',
      '    n += 1',
      'print(n)',
    ].join('\n');
    const staging = path.join(tmp, 'out');
    const r = cp.spawnSync(py, ['-c', script, wheel, staging, ...WHEEL_PREFIXES], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`extraction failed: ${r.stderr.trim().split('\n').pop()}`);
    for (const f of ['lib/libtensorflow_cc.so.2', 'lib/libtensorflow_framework.so.2', 'include/tensorflow/c/c_api.h',
      'include/xla/tsl/c/tsl_status.h', 'include/tensorflow/c/kernels.h', 'include/tsl/platform/platform.h']) {
      if (!fs.existsSync(path.join(staging, f))) throw new Error(`the wheel has no ${f}`);
    }
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.renameSync(staging, dir);
    fs.writeFileSync(marker, stamp);
    return dir;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function linkInto(tfDir, cacheDir) {
  const deps = path.join(tfDir, 'deps');
  fs.rmSync(deps, { recursive: true, force: true });
  fs.mkdirSync(path.join(deps, 'lib'), { recursive: true });
  const lib = (f) => path.join(deps, 'lib', f);
  fs.symlinkSync(path.join(cacheDir, 'lib', 'libtensorflow_cc.so.2'), lib('libtensorflow_cc.so.2'));
  fs.symlinkSync(path.join(cacheDir, 'lib', 'libtensorflow_framework.so.2'), lib('libtensorflow_framework.so.2'));
  // Names the binding's link line (-ltensorflow, -ltensorflow_framework) and
  // tfjs-node's install script (libtensorflow.so.<version>) look for.
  for (const name of ['libtensorflow.so', 'libtensorflow.so.2', `libtensorflow.so.${LIBTF_OFFICIAL_VERSION}`]) {
    fs.symlinkSync('libtensorflow_cc.so.2', lib(name));
  }
  for (const name of ['libtensorflow_framework.so', `libtensorflow_framework.so.${LIBTF_OFFICIAL_VERSION}`]) {
    fs.symlinkSync('libtensorflow_framework.so.2', lib(name));
  }
  fs.symlinkSync(path.join(cacheDir, 'include'), path.join(deps, 'include'));
  fs.writeFileSync(path.join(deps, 'MINICPMV_SOURCE'), `tensorflow-cpu ${TF_WHEEL_VERSION} wheel (${cacheDir})\n`);
}

async function main() {
  if (process.env.MINICPMV_SKIP_NATIVE === '1') { log('MINICPMV_SKIP_NATIVE=1: leaving tfjs-node alone'); return; }
  if (os.platform() !== 'linux' || os.arch() !== 'x64') { log(`${os.platform()}-${os.arch()}: leaving tfjs-node to its own installer`); return; }
  const tfDir = tfjsNodeDir();
  if (!tfDir) { log('@tensorflow/tfjs-node is not installed; nothing to stage'); return; }
  if (bindingLoads(tfDir)) { log('tfjs-node binding already loads; nothing to do'); return; }
  const url = officialUrl();
  if (await officialReachable(url)) { log(`official libtensorflow download reachable (${url}); using it`); return; }
  log(`official libtensorflow download not reachable (${url}); falling back to the TensorFlow pip wheel`);
  const py = python();
  if (!py) throw new Error('no python3 with pip found to fetch the TensorFlow wheel');
  const cacheDir = stageCache(py);
  linkInto(tfDir, cacheDir);
  log(`staged libtensorflow ${TF_WHEEL_VERSION} under ${path.join(tfDir, 'deps')}; tfjs-node will now build its binding`);
}

main().catch((e) => {
  log(`could not stage libtensorflow: ${e.message}`);
  log('the native backend will be missing; minicpmv-ts will use the pure-JS cpu backend');
  process.exit(0);
});
