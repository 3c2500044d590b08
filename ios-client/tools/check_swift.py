#!/usr/bin/env python3
"""Static checks of the iOS client that a compiler does not make.

Run through scripts/check-swift.sh (after it has built and tested the package with a real Swift
compiler), which provides tree-sitter and the Swift grammar. What these add to the compiler: the
SwiftUI views of ChatApp/ are not compiled off Apple platforms, so their parse (1) is all Linux
checks of them; the import policy (2); fixtures no test decodes (3); and project.yml (4).

Checks:
1. Syntax: every .swift file under ios-client/ parses with tree-sitter-swift without ERROR or
   MISSING nodes (reported as file:line:column).
2. Imports: ChatKit's sources import only Foundation, FoundationNetworking, Observation,
   Network (NWPathMonitor) and (for the Keychain store) Security; ChatAppCore and chatkit-cli only
   Foundation(Networking), Observation and ChatKit (ChatAppCore also ImageIO, behind
   `#if canImport(ImageIO)`, to turn HEIC photos into JPEG); the app (SwiftUI, UIKit,
   UserNotifications, PhotosUI, UniformTypeIdentifiers) and the tests nothing outside the SDK and
   the package.
3. Fixtures: every fixture the Swift tests name (fixture("...") and roundTrip(T.self, "...")
   calls) exists in fixtures/wire/,
   and every client-facing fixture there (rest_*, ws_*, limits) is named by some test.
4. Project: ios-client/project.yml is valid YAML whose source, Info.plist and package paths exist.

Exit status 0 when everything passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import tree_sitter
import tree_sitter_swift
import yaml

SKIP_DIRS = {".build", ".swiftpm", "DerivedData", "build", ".git"}

# What each part of the client may import (module names).
CHATKIT_IMPORTS = {"Foundation", "FoundationNetworking", "Observation", "Security", "Network"}
# ImageIO: HEIC photos become JPEG before upload (ImagePreparation; Apple platforms only, behind
# `#if canImport(ImageIO)`, so Linux builds pass files through).
APP_CORE_IMPORTS = {"Foundation", "Observation", "ChatKit", "ImageIO"}
CLI_IMPORTS = {"Foundation", "FoundationNetworking", "ChatKit"}
# UIKit and UserNotifications: the app delegate (APNs token, notification taps) and the
# notification permission; the models in ChatAppCore stay free of them. PhotosUI and
# UniformTypeIdentifiers: the composer's photo picker and the file importer's types.
APP_IMPORTS = {
    "SwiftUI", "UIKit", "UserNotifications", "PhotosUI", "UniformTypeIdentifiers",
    "Foundation", "Observation", "ChatKit", "ChatAppCore",
}
TEST_IMPORTS = {"XCTest", "Foundation", "FoundationNetworking", "ChatKit", "ChatAppCore"}
MANIFEST_IMPORTS = {"PackageDescription"}

# Fixtures of internal records that no client decodes.
INTERNAL_FIXTURE_PREFIXES = ("bus_", "internal_")

# How the Swift tests name a fixture: fixture("name") or roundTrip(Type.self, "name").
FIXTURE_CALL = re.compile(r'\b(?:fixture|roundTrip)\([^"\n)]*"([A-Za-z0-9_]+)"')


def swift_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.swift")):
        if not any(part in SKIP_DIRS for part in path.relative_to(root).parts):
            files.append(path)
    return files


def syntax_problems(parser: tree_sitter.Parser, path: Path, repo: Path) -> list[str]:
    source = path.read_bytes()
    tree = parser.parse(source)
    lines = source.decode("utf-8", errors="replace").splitlines()
    problems = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            line, column = node.start_point
            kind = f"missing {node.type}" if node.is_missing else "syntax error"
            text = lines[line].strip() if line < len(lines) else ""
            problems.append(f"{path.relative_to(repo)}:{line + 1}:{column + 1}: {kind}: {text}")
            # One report per broken region is enough.
            continue
        if node.has_error:
            stack.extend(reversed(node.children))
    return problems


def imported_modules(parser: tree_sitter.Parser, path: Path) -> list[tuple[int, str]]:
    tree = parser.parse(path.read_bytes())
    found = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "import_declaration":
            names = [c for c in node.children if c.type == "identifier"]
            if names:
                module = names[0].text.decode().split(".")[0]
                found.append((node.start_point[0] + 1, module))
            continue
        stack.extend(node.children)
    return found


def allowed_imports(path: Path, client: Path) -> set[str] | None:
    relative = path.relative_to(client).parts
    if path.name == "Package.swift":
        return MANIFEST_IMPORTS
    if relative[:3] == ("ChatKit", "Sources", "ChatAppCore"):
        return APP_CORE_IMPORTS
    if relative[:3] == ("ChatKit", "Sources", "chatkit-cli"):
        return CLI_IMPORTS
    if relative[:2] == ("ChatKit", "Sources"):
        return CHATKIT_IMPORTS
    if relative[:2] == ("ChatKit", "Tests"):
        return TEST_IMPORTS
    if relative[:1] == ("ChatApp",):
        return APP_IMPORTS
    return None


def check_fixtures(client: Path, repo: Path) -> list[str]:
    problems = []
    fixtures_dir = repo / "fixtures" / "wire"
    tests_dir = client / "ChatKit" / "Tests"
    referenced: dict[str, str] = {}
    for path in swift_files(tests_dir):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for name in FIXTURE_CALL.findall(line):
                referenced.setdefault(name, f"{path.relative_to(repo)}:{number}")
    if not referenced:
        problems.append(f"{tests_dir.relative_to(repo)}: no fixture(\"...\") reference found")
    for name, where in sorted(referenced.items()):
        if not (fixtures_dir / f"{name}.json").is_file():
            problems.append(f"{where}: fixture fixtures/wire/{name}.json does not exist")
    on_disk = sorted(p.stem for p in fixtures_dir.glob("*.json")) if fixtures_dir.is_dir() else []
    if not on_disk:
        problems.append("fixtures/wire/ has no fixtures; run `UPDATE_FIXTURES=1 cargo test -p chat-types --test fixtures`")
    for name in on_disk:
        if name.startswith(INTERNAL_FIXTURE_PREFIXES):
            continue
        if name not in referenced:
            problems.append(f"fixtures/wire/{name}.json: no Swift test decodes it (add a fixture(\"{name}\") test)")
    return problems


def check_project(client: Path, repo: Path) -> list[str]:
    spec_path = client / "project.yml"
    if not spec_path.is_file():
        return [f"{spec_path.relative_to(repo)}: missing"]
    try:
        spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        return [f"{spec_path.relative_to(repo)}: invalid YAML: {error}"]
    problems = []
    where = spec_path.relative_to(repo)
    if not isinstance(spec, dict) or "name" not in spec or "targets" not in spec:
        return [f"{where}: needs `name` and `targets`"]
    for name, package in (spec.get("packages") or {}).items():
        path = package.get("path") if isinstance(package, dict) else None
        if path and not (client / path / "Package.swift").is_file():
            problems.append(f"{where}: package {name}: {path}/Package.swift does not exist")
    for name, target in spec["targets"].items():
        sources = target.get("sources", [])
        for source in sources if isinstance(sources, list) else [sources]:
            path = source.get("path") if isinstance(source, dict) else source
            if path and not (client / path).exists():
                problems.append(f"{where}: target {name}: source {path} does not exist")
        info = target.get("info")
        if isinstance(info, dict) and "path" in info and not (client / info["path"]).parent.is_dir():
            problems.append(f"{where}: target {name}: Info.plist folder of {info['path']} does not exist")
        for dependency in target.get("dependencies", []):
            package = dependency.get("package") if isinstance(dependency, dict) else None
            if package and package not in (spec.get("packages") or {}):
                problems.append(f"{where}: target {name}: unknown package {package}")
    return problems


def main() -> int:
    parser_args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser_args.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[2])
    args = parser_args.parse_args()
    repo: Path = args.repo.resolve()
    client = repo / "ios-client"

    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    files = swift_files(client)
    problems: list[str] = []

    for path in files:
        problems.extend(syntax_problems(parser, path, repo))
        allowed = allowed_imports(path, client)
        if allowed is None:
            continue
        for line, module in imported_modules(parser, path):
            if module not in allowed:
                problems.append(f"{path.relative_to(repo)}:{line}: import of {module} (allowed here: {', '.join(sorted(allowed))})")

    problems.extend(check_fixtures(client, repo))
    problems.extend(check_project(client, repo))

    for problem in problems:
        print(problem)
    print(f"checked {len(files)} Swift files: {'FAILED' if problems else 'ok'} ({len(problems)} problems)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
