// `node bench/show.mjs [FILE]`: prints the tables of a saved run (default: the newest one).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ratiosToFloor, ratiosToHaproxy, renderTables, renderTlsVerdicts, summarize } from './lib/report.mjs';
import { RESULTS_DIR } from './lib/targets.mjs';

const file =
  process.argv[2] ??
  join(RESULTS_DIR, readdirSync(RESULTS_DIR).filter((f) => f.endsWith('-bench.json')).sort().at(-1) ?? '');
const results = JSON.parse(readFileSync(file, 'utf8'));
const summaries = summarize(results.runs);
console.log(`${file}\n${results.startedAt}, options ${JSON.stringify(results.options)}`);
console.log(renderTables(summaries, ratiosToHaproxy(summaries, results.rssIdleKiB), ratiosToFloor(summaries), results.rssIdleKiB));
console.log(renderTlsVerdicts(summaries, results.idleConnections));
