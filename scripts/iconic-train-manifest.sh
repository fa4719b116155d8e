#!/usr/bin/env bash
# Writes a manifest of the GroceryStore catalogue ("iconic") images of the
# TRAINING classes, for choosing an iconic-query recipe on validation classes
# (prodsearch tune --queries); the test classes' iconic images are left out.
# usage: scripts/iconic-train-manifest.sh [SHARED] > iconic_train.tsv
set -euo pipefail
shared="${1:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
gs="$shared/data/grocerystore"
cut -f2 "$gs/splits/train.tsv" | sort -u > /tmp/.train-classes.$$
awk -F, -v root="$gs/dataset" 'NR==FNR { keep[$1]=1; next } FNR>1 && ($2 in keep) { print root $5 "\t" $2 }' \
  /tmp/.train-classes.$$ "$gs/dataset/classes.csv"
rm -f /tmp/.train-classes.$$
