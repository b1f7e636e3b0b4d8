// After `npm install`: say which TF.js backend this checkout will use, and why
// the native one is missing if it is. Never fails the install.
import { spawnSync } from 'node:child_process';

const probe = spawnSync(process.execPath, ['-e', "require('@tensorflow/tfjs-node'); console.log('ok')"], {
  encoding: 'utf8',
  env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
});
if (probe.status === 0 && probe.stdout.includes('ok')) {
  console.error('[minicpmv] native TensorFlow backend (@tensorflow/tfjs-node) is installed and loads.');
} else {
  const why = (probe.stderr || '').split('\n').find((l) => /Error|Cannot find/.test(l)) ?? 'unknown reason';
  console.error('[minicpmv] native TensorFlow backend is NOT available; the pure-JS cpu backend will be used.');
  console.error(`[minicpmv]   reason: ${why.trim()}`);
  console.error('[minicpmv]   see README.md "Backends" for how the install stages libtensorflow.');
}
