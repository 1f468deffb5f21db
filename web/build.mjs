// Bundles the app into dist/ (esbuild, pinned in package-lock.json). `node build.mjs`.
// devstack/web.py runs this when the sources changed and serves dist/.
import { build } from "esbuild";
import { copyFile, mkdir, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "dist");
const out = join(here, `dist.${process.pid}`); // built aside, then swapped in: a page load never sees half a build

await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
await build({
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  outfile: join(out, "app.js"),
  logLevel: "warning",
});
for (const file of ["index.html", "styles.css"]) {
  await copyFile(join(here, file), join(out, file));
}
await rm(`${dist}.old`, { recursive: true, force: true });
await rename(dist, `${dist}.old`).catch(() => {});
await rename(out, dist);
await rm(`${dist}.old`, { recursive: true, force: true });
console.log(`built ${dist}`);
