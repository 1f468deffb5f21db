"""One client kit for the bank's public surface, for the tools around it.

bankctl, the reference web app's local server (devstack/web.py), the bench and the tests
all talk to the bank as its customers and operators do; they do it with this kit, so the
surface is spoken to one way:

* `auth`: the Auth emulator (sign up, sign in; sign in as any user, set custom claims).
* `app_check` and `callables`: the app's callables with an App Check token; answers as
  results or refusals (`call`), or as they came (`send`, for the tests of refusals).
* `rest` and `session`: Firestore as the signed-in user, under the security rules (the
  REST API one request at a time; the Google client to query and listen).
* `device` and `payments`: the phone's key for strong customer authentication and the
  payment requests it confirms.
* `admin`: the operator's Admin SDK reads and the ledger's admin path (deposits).
* `cards`: the card network's side (the processor simulator and the vault).
* `employer`: a demo employer paying salaries.
* `errors`, `http`, `endpoints`: one-line errors, the HTTP helper, where the surface is.

A top-level package, not part of bankctl: devstack (which bankctl depends on) and the
tests use it too, and it depends on none of them (only on fjordbank's domain and adapters
and on simulators/). Development and test tooling: it is not in the services' image
(run_services/Dockerfile copies fjordbank/, run_services/ and config/) and not vendored
into functions/ (scripts/vendor_shared.py copies fjordbank/ only).
"""
