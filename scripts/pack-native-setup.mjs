// Rebuilds tools/minicpmv-native-setup-<version>.tgz from tools/native-setup/.
// The tarball (not a folder link) is what package.json depends on: npm runs a
// tarball dependency's preinstall together with the other dependencies'
// preinstall scripts, before @tensorflow/tfjs-node's install script.
// After running this, run `npm install` so package-lock.json records the new integrity.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = execFileSync('npm', ['pack', '--pack-destination', path.join(root, 'tools')], {
  cwd: path.join(root, 'tools', 'native-setup'), encoding: 'utf8',
});
console.log(`wrote tools/${out.trim().split('\n').pop()}`);
