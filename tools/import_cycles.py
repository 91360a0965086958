"""How far `permanence`'s sub-packages are from importing each other without a circle.

    .venv/bin/python tools/import_cycles.py            the counts
    .venv/bin/python tools/import_cycles.py --list     and every import to remove, by pair

Reads the import graph as import-linter does (grimp, lazy imports inside functions included)
and prints, for the sub-packages of ``permanence``:

- the package-level dependencies import-linter nominates for removal to make them acyclic
  (the number an ``acyclic_siblings`` contract on ``permanence`` would report broken), and
  how many module imports they stand for;
- the pairs of sub-packages that import each other both ways (the shortest circles);
- the strongly connected components: the groups of sub-packages caught in one tangle.

Issue 14, ADR 0021. Nothing is written; the exit status is 0.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections import defaultdict

import grimp

ROOT = "permanence"
# Not features: the interfaces and the registry above them, the runtime below (the layers
# contract orders them), and `web`, which holds both the shared kit and the assembly.
NOT_FEATURES = frozenset(
    f"{ROOT}.{name}"
    for name in (
        ["__main__", "cli", "web", "models", "demo", "migrations", "runtime", "health", "metrics"]
    )
)


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _components(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print each import to remove")
    args = parser.parse_args(argv)

    whole = grimp.build_graph(ROOT, cache_dir=None)
    for label, graph in (("every sub-package", whole), ("features only", _features(whole))):
        print(f"== {label}")
        _report(graph, listing=args.list)
    return 0


def _features(whole: grimp.ImportGraph) -> grimp.ImportGraph:
    graph = copy.deepcopy(whole)
    for module in list(graph.modules):
        if _package(module) in NOT_FEATURES:
            graph.remove_module(module)
    return graph


def _report(graph: grimp.ImportGraph, *, listing: bool) -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = _package(module), _package(imported)
            if a != b and a != ROOT and b != ROOT:
                edges[a].add(b)

    breakers = graph.nominate_cycle_breakers(ROOT)
    by_pair: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for importer, imported in breakers:
        by_pair[(_package(importer), _package(imported))].append((importer, imported))
    mutual = sorted(
        {tuple(sorted((a, b))) for a in edges for b in edges[a] if a in edges.get(b, ())}
    )
    tangles = _components(edges)

    print(f"package-level imports to remove to make them acyclic: {len(by_pair)}")
    print(f"  (module imports behind them: {len(breakers)})")
    print(f"pairs of sub-packages importing each other: {len(mutual)}")
    print(f"tangles (strongly connected groups): {len(tangles)}")
    for group in tangles:
        print(f"  {len(group)} packages: {' '.join(p.removeprefix(ROOT + '.') for p in group)}")
    if listing:
        print("\nimports to remove (importer -> imported):")
        for (a, b), imports in sorted(by_pair.items()):
            print(f"  {a} -> {b}")
            for importer, imported in sorted(imports):
                print(f"      {importer} -> {imported}")
        print("\nmutual pairs:")
        for a, b in mutual:
            print(f"  {a} <-> {b}")


if __name__ == "__main__":
    raise SystemExit(main())
