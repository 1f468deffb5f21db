"""Patches for the pinned firebase-tools (package.json), applied by the bootstrap after `npm ci`.

Each patch replaces an exact piece of firebase-tools' compiled JavaScript and refuses to
run when that piece is not found (a new firebase-tools version: re-check the upstream
issue and drop or redo the patch). Applying twice changes nothing.

1. Python runtime workers survive being stopped (firebase-tools #11069, open:
   https://github.com/firebase/firebase-tools/issues/11069). The Functions emulator starts
   every Python worker as ``sh -c '. venv/bin/activate && functions-framework'`` and stops
   a worker with ``process.kill()``, which signals the shell: functions-framework (a
   gunicorn master and its worker) survives, keeps its port and is never reaped. Under a
   stream of invocations the orphans pile up (54 -> 376 workers in minutes here), new
   workers fail with "Address already in use", and the kernel ends up killing the
   Firestore emulator. Fix: ``exec`` the runtime, so the signal reaches it.

2. One new Python worker per concurrent request, never reaped. The emulator starts a
   worker whenever a function has no idle one and keeps every worker for as long as it
   runs (about 170 MB each for Python), so 30 concurrent calls of one callable leave 30
   workers behind. Fix: at most ``FUNCTIONS_EMULATOR_MAX_WORKERS`` workers per function
   (unset or 0: unlimited, as upstream); a request beyond that waits for an idle worker,
   as a request waits for a free instance at max_instances in production.

3. A worker that fails to start (e.g. its port taken between the port finder and the
   bind) stayed alive and left the HTTP request unanswered until the caller's own timeout.
   Fix: such a worker is killed (it would count against the limit above for ever),
   starting is tried three times, then the request is answered 500 with the reason.

4. A request handed to a worker could be lost: "Request to function failed: Error: socket
   hang up". Node 19+ keeps HTTP connections alive by default, and the worker's gunicorn
   closes an idle one after 2 s; a request sent on a connection the worker is just closing
   fails, the worker is killed and the event (a Firestore trigger: a payment request) is
   not retried. Fix: a new connection per request to a worker (``agent: false``), on the
   machine's loopback. Not reported upstream that we found.

5. Two Python workers started at once could be given the same port, and a request then ran
   the wrong function: the emulator asks portfinder for a free port (free because neither
   worker has bound it yet), both workers get it, one binds, and the other's health check
   reaches the first and passes. Seen as ``onboarding_submit`` answering with the
   device-key callable's validation error. Fix: the ports handed to Python workers are
   reserved until the worker exits, and a reserved port is never handed out again. Not
   reported upstream that we found.

Usage: python scripts/patch_firebase_tools.py [node_modules/firebase-tools]
"""

from __future__ import annotations

import sys
from pathlib import Path

MARK = "/* fjordbank-patch */"

PYTHON_JS = "lib/functions/python.js"
WORKER_JS = "lib/emulator/functionsRuntimeWorker.js"
EMULATOR_JS = "lib/emulator/functionsEmulator.js"

# (file, old, new): ``new`` carries MARK so a patched file is recognised.
PATCHES: list[tuple[str, str, str]] = [
    (
        PYTHON_JS,
        '    args.push("&&", ...commandAndArgs);\n',
        f'    args.push("&&", ...(utils_1.IS_WINDOWS ? [] : ["exec"]), ...commandAndArgs); {MARK}\n',
    ),
    (
        WORKER_JS,
        "    readyForWork(triggerId, runtime) {\n",
        f"""    async acquire(triggerId, runtime, start) {{ {MARK}
        const max = parseInt(process.env.FUNCTIONS_EMULATOR_MAX_WORKERS || "0", 10) || 0;
        let failures = 0;
        while (!this.readyForWork(triggerId, runtime)) {{
            if (max && this.getTriggerWorkers(triggerId, runtime).length >= max) {{
                await new Promise((resolve) => setTimeout(resolve, 20));
                continue;
            }}
            try {{
                await start();
            }}
            catch (e) {{
                failures += 1;
                if (failures >= 3) {{
                    throw e;
                }}
                this.log(`starting a worker failed (${{e}}), trying again`);
            }}
        }}
    }}
    readyForWork(triggerId, runtime) {{
""",
    ),
    (
        WORKER_JS,
        "                headers: req.headers,\n            };\n            if (this.timeoutSeconds) {\n",
        f"                headers: req.headers,\n                agent: false, {MARK}\n            }};\n"
        "            if (this.timeoutSeconds) {\n",
    ),
    (
        WORKER_JS,
        "    async waitForSocketReady() {\n",
        f"""    async waitForSocketReady() {{ {MARK}
        try {{
            await this.waitForSocketReadyOnce();
        }}
        catch (e) {{
            this.runtime.process.kill("SIGKILL");
            throw e;
        }}
    }}
    async waitForSocketReadyOnce() {{
""",
    ),
    (
        EMULATOR_JS,
        """        const pool = this.workerPools[record.backend.codebase];
        if (!pool.readyForWork(trigger.id, record.backend.runtime)) {
            try {
                await this.startRuntime(record.backend, trigger);
            }
            catch (e) {
                this.logger.logLabeled("ERROR", `Failed to start runtime for ${trigger.id}: ${e}`);
                return;
            }
        }
""",
        f"""        const pool = this.workerPools[record.backend.codebase];
        try {{ {MARK}
            await pool.acquire(trigger.id, record.backend.runtime, () => this.startRuntime(record.backend, trigger));
        }}
        catch (e) {{
            this.logger.logLabeled("ERROR", `Failed to start runtime for ${{trigger.id}}: ${{e}}`);
            return;
        }}
""",
    ),
    (
        EMULATOR_JS,
        """        const pool = this.workerPools[record.backend.codebase];
        if (!pool.readyForWork(trigger.id, record.backend.runtime)) {
            try {
                await this.startRuntime(record.backend, trigger);
            }
            catch (e) {
                const message = e instanceof Error ? e.message : String(e);
                this.logger.logLabeled("ERROR", `Failed to handle request for function ${trigger.id}`);
                this.logger.logLabeled("ERROR", `Failed to start functions in ${record.backend.functionsDir}: ${message}`);
                return;
            }
        }
""",
        f"""        const pool = this.workerPools[record.backend.codebase];
        try {{ {MARK}
            await pool.acquire(trigger.id, record.backend.runtime, () => this.startRuntime(record.backend, trigger));
        }}
        catch (e) {{
            const message = e instanceof Error ? e.message : String(e);
            this.logger.logLabeled("ERROR", `Failed to handle request for function ${{trigger.id}}`);
            this.logger.logLabeled("ERROR", `Failed to start functions in ${{record.backend.functionsDir}}: ${{message}}`);
            res.status(500).json({{ error: {{ status: "INTERNAL", message: `the function's runtime did not start: ${{message}}` }} }});
            return;
        }}
""",
    ),
    (
        EMULATOR_JS,
        'const EVENT_INVOKE_GA4 = "functions_invoke";\n',
        f"""const EVENT_INVOKE_GA4 = "functions_invoke";
const reservedWorkerPorts = new Set(); {MARK}
async function reserveWorkerPort() {{
    let start = 8081 + (0, utils_1.randomInt)(0, 1000);
    for (;;) {{
        const port = await portfinder.getPortPromise({{ port: start }});
        if (!reservedWorkerPorts.has(port)) {{
            reservedWorkerPorts.add(port);
            return port;
        }}
        start = port + 1;
    }}
}}
""",
    ),
    (
        EMULATOR_JS,
        """        const port = await portfinder.getPortPromise({
            port: 8081 + (0, utils_1.randomInt)(0, 1000),
        });
        const childProcess = (0, python_1.runWithVirtualEnv)(args, backend.functionsDir, {
            ...envs,
            PYTHONUNBUFFERED: "1",
            DEBUG: "False",
            HOST: "127.0.0.1",
            PORT: port.toString(),
        });
""",
        f"""        const port = await reserveWorkerPort(); {MARK}
        const childProcess = (0, python_1.runWithVirtualEnv)(args, backend.functionsDir, {{
            ...envs,
            PYTHONUNBUFFERED: "1",
            DEBUG: "False",
            HOST: "127.0.0.1",
            PORT: port.toString(),
        }});
        childProcess.on("exit", () => reservedWorkerPorts.delete(port));
""",
    ),
]


class PatchError(Exception):
    pass


def apply(root: Path) -> list[str]:
    """Apply every patch under ``root`` (the firebase-tools package); returns what changed."""
    changed = []
    texts: dict[str, str] = {}
    for rel, old, new in PATCHES:
        text = texts.get(rel)
        if text is None:
            text = texts[rel] = (root / rel).read_text()
        if new in text:
            continue
        if text.count(old) != 1:
            raise PatchError(
                f"{rel}: the piece to patch was not found once; is firebase-tools still the pinned version?"
            )
        texts[rel] = text.replace(old, new)
        changed.append(rel)
    for rel in set(changed):
        (root / rel).write_text(texts[rel])
    return sorted(set(changed))


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "node_modules/firebase-tools")
    try:
        changed = apply(root)
    except (OSError, PatchError) as exc:
        print(f"patch_firebase_tools: {exc}", file=sys.stderr)
        return 1
    print(f"firebase-tools patched: {', '.join(changed)}" if changed else "firebase-tools already patched")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
