/**
 * The layering of src/ (DEVELOPERS.md: UI → client → worker → engine → pipeline → runtime), checked on the import
 * graph read from the sources: no import cycles anywhere, and the app reaches the lower layers only through the
 * client. Type-only imports count too: a type cycle still ties two modules' designs together.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/fixtures.js';

const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.ts$/.test(name) && !name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Relative import specifiers of a module: static imports/exports and dynamic import(). */
export function importSpecifiers(code: string): string[] {
  const noComments = code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const found: string[] = [];
  for (const m of noComments.matchAll(/(?:^|\s|;)(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]/g)) found.push(m[1]!);
  for (const m of noComments.matchAll(/(?:^|\s|;)import\s*['"]([^'"]+)['"]/g)) found.push(m[1]!);
  for (const m of noComments.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1]!);
  return found.filter((s) => s.startsWith('.'));
}

/** The import graph of src/: module path (relative to src/) → modules it imports. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const deps = importSpecifiers(readFileSync(file, 'utf8')).map((spec) => {
      const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
      return relative(SRC, target);
    });
    graph.set(relative(SRC, file), [...new Set(deps)].filter((d) => !d.startsWith('..')));
  }
  return graph;
}

/** Every strongly connected component with more than one module (or a self-import): the cycles. */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

describe('import graph helpers', () => {
  it('finds static, re-export, side-effect and dynamic imports, not commented ones', () => {
    const code = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      "export { c } from './c.js';",
      "import './side.js';",
      "const d = await import('./d.js');",
      "// import { e } from './e.js';",
      "/* import { f } from './f.js'; */",
      "import { g } from 'node:fs';",
    ].join('\n');
    expect(importSpecifiers(code)).toEqual(['./a.js', '../b.js', './c.js', './side.js', './d.js']);
  });
  it('detects a cycle and a self-import, and none in a DAG', () => {
    expect(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]]))).toEqual([['a', 'b', 'c']]);
    expect(cycles(new Map([['a', ['a']]]))).toEqual([['a']]);
    expect(cycles(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]]))).toEqual([]);
  });
});

describe('src/ layering', () => {
  const graph = importGraph();

  it('reads the whole tree', () => {
    expect(graph.size).toBeGreaterThan(80);
    expect(graph.get('runtime/ort-backend.ts')).toContain('runtime/component-session.ts');
  });

  it('has no import cycles', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('the app reaches pipeline/, remote/, runtime/, engine/ and worker/ only through the client', () => {
    const skips = [...graph]
      .filter(([from]) => from.startsWith('app/'))
      .flatMap(([from, deps]) => deps.filter((d) => /^(pipeline|remote|runtime|engine|worker)\//.test(d)).map((d) => `${from} → ${d}`));
    expect(skips).toEqual([]);
  });

  it('the pipeline is pure: no runtime, engine, worker, storage, client or app imports', () => {
    const skips = [...graph]
      .filter(([from]) => from.startsWith('pipeline/'))
      .flatMap(([from, deps]) => deps.filter((d) => /^(runtime|engine|worker|storage|client|app|remote)\//.test(d)).map((d) => `${from} → ${d}`));
    expect(skips).toEqual([]);
  });
});
