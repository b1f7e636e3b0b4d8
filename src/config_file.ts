// Reading config.json from a file (Node); parsing and every derived number are in config.ts.
import fs from 'node:fs';
import { ConfigError, parseConfig, type MiniCPMVConfig } from './config.ts';

export function loadConfig(path: string): MiniCPMVConfig {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`${path}: cannot read config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, path);
}
