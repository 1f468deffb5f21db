"""Copy the shared `fjordbank` package into functions/ (firebase.json predeploy hook)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devstack.vendor import vendor_shared

if __name__ == "__main__":
    vendor_shared(REPO)
    print("copied fjordbank/ into functions/fjordbank/")
