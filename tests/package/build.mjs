// Builds tests/package/app/ (an app of a dozen lines on `import init, { HmsClient } from
// "hms-client"`) with each toolchain, as its users would: no plugin for the wasm and no
// config file, only the command line's input and output paths.
//
//   node build.mjs            # into dist/<toolchain>/, each with an index.html
//
// dist/plain is the no-build case: the app's own main.js with an import map that points
// "hms-client" at /pkg/index.js (the e2e tests serve the installed package there).
// Webpack 5 and the current Vite are built by examples/ as well.

import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const app = join(here, "app");
const dist = join(here, "dist");
const node = (pkg, file) => [process.execPath, join(here, "node_modules", pkg, file)];

function run(label, [cmd, ...args]) {
  const start = Date.now();
  execFileSync(cmd, args, { cwd: here, stdio: ["ignore", "ignore", "inherit"], timeout: 120_000 });
  console.log(`built ${label} in ${Date.now() - start} ms`);
}

/** The app's page with its module script pointing at `script` (and extra head content). */
function page(out, script, head = "") {
  const html = readFileSync(join(app, "index.html"), "utf8")
    .replace('<script type="module" src="./main.js"></script>', `${head}<script type="module" src="${script}"></script>`);
  writeFileSync(join(out, "index.html"), html);
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist);

run("vite 8", [...node("vite", "bin/vite.js"), "build", "app", "--outDir", join(dist, "vite"), "--emptyOutDir", "--logLevel", "warn"]);
run("vite 6", [...node("vite-6", "bin/vite.js"), "build", "app", "--outDir", join(dist, "vite6"), "--emptyOutDir", "--logLevel", "warn"]);

mkdirSync(join(dist, "esbuild"));
run("esbuild", [join(here, "node_modules", ".bin", "esbuild"), "app/main.js", "--bundle", "--format=esm", "--minify", `--outdir=${join(dist, "esbuild")}`, "--log-level=warning"]);
page(join(dist, "esbuild"), "./main.js");

mkdirSync(join(dist, "rollup"));
run("rollup", [...node("rollup", "dist/bin/rollup"), "app/main.js", "--plugin", "@rollup/plugin-node-resolve", "--format", "es", "--dir", join(dist, "rollup"), "--silent"]);
page(join(dist, "rollup"), "./main.js");

mkdirSync(join(dist, "plain"));
cpSync(join(app, "main.js"), join(dist, "plain", "main.js"));
page(join(dist, "plain"), "./main.js", '<script type="importmap">{"imports":{"hms-client":"/pkg/index.js"}}</script>\n');
