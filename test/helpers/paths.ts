// Where tests find the repository and the optional ../shared data.
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
export const goldenDir = path.join(sharedDir, 'golden');
export const referenceDir = path.join(sharedDir, 'reference');
export const fixturesDir = path.join(repoRoot, 'test', 'fixtures');
export const hasShared = (...parts: string[]): boolean => fs.existsSync(path.join(sharedDir, ...parts));
