// Text for people about a fuzz run: each finding with its shrunk reproduction, and the run's counts.
import type { Finding, FuzzResult } from './fuzz-runner.js';

export function formatFinding(finding: Finding): string {
  const lines = [
    `[${finding.property}] ${finding.mode} mode, ${finding.routes.join(', ')}: ${finding.detail}`,
    `  answered: ${finding.code}; inputs that failed this way: ${finding.count}`,
  ];
  if (finding.shrunk.route !== 'none') {
    lines.push(
      `  bad input: ${finding.shrunk.bad.length > 0 ? finding.shrunk.bad.join('; ') : '(none: a valid-looking input)'}`,
    );
    lines.push(`  body: ${finding.body.replace(/\s+/g, ' ').slice(0, 400) || '(empty)'}`);
  }
  lines.push(`  reproduction: ${finding.repro}`);
  return lines.join('\n');
}

export function formatFindings(findings: readonly Finding[]): string {
  return findings.map(formatFinding).join('\n\n');
}

export function formatSummary(result: FuzzResult): string {
  const lines: string[] = [`seed ${result.seed}: ${result.inputs} inputs`];
  for (const mode of result.modes) {
    const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
    lines.push(
      `  ${mode.mode} mode: ${mode.inputs} inputs in ${(mode.elapsedMs / 1000).toFixed(1)} s, ` +
        `${mode.inputsPerSecond.toFixed(0)} inputs/s; heapUsed ${mb(mode.heap.baselineBytes)} MB → ` +
        `${mb(mode.heap.afterBytes)} MB (gc: ${mode.heap.gc})`,
    );
  }
  lines.push('', 'inputs per route (successes; statuses):');
  for (const [route, count] of Object.entries(result.perRoute).sort((a, b) => b[1] - a[1])) {
    const statuses = Object.entries(result.statuses[route] ?? {})
      .sort((a, b) => b[1] - a[1])
      .map(([status, n]) => `${status}×${n}`)
      .join(' ');
    lines.push(`  ${route.padEnd(36)} ${String(count).padStart(8)}  (${result.successes[route] ?? 0} ok; ${statuses})`);
  }
  lines.push('', `${result.findings.length} findings${result.findings.length > 0 ? ':' : ''}`);
  if (result.findings.length > 0) lines.push('', formatFindings(result.findings));
  return lines.join('\n');
}
