#!/usr/bin/env bash
# Fuzzes the parsers with libFuzzer + AddressSanitizer (Swift's -sanitize=fuzzer,address), each target for a given
# time, seeded from the fixtures. Crashing inputs are written to Tests/Fixtures/fuzz/<target>/ (the regression corpus
# that `swift test` replays: FuzzRegressionTests); the working corpus grows in /tmp/lfm-fuzz/<target>.
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET=30] [TARGET...]     targets: safetensors gguf wav tokenizer config codes
set -uo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-30}; shift || true
TARGETS=${*:-safetensors gguf wav tokenizer config codes}
mkdir -p Fuzz/.deps && ln -sfn ../.. Fuzz/.deps/lfm-audio
(cd Fuzz && swift build -c release -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --product lfm-fuzz \
  2>&1 | grep -E "error|Build" )
BIN=Fuzz/.build/release/lfm-fuzz
[ -x $BIN ] || { echo "fuzz build failed"; exit 1; }
W=/tmp/lfm-fuzz
mkdir -p $W
python3 scripts/fuzz_seeds.py $W/seeds
{
  printf "\n| target | seconds | executions | corpus | crashes (new files in Tests/Fixtures/fuzz/<target>) |\n"
  printf "|---|---|---|---|---|\n"
} > $W/summary.md
for t in $TARGETS; do
  mkdir -p $W/$t Tests/Fixtures/fuzz/$t
  before=$(ls Tests/Fixtures/fuzz/$t | wc -l)
  LFM_FUZZ_TARGET=$t LFM_FUZZ_TOKENIZER=Tests/Fixtures/tiny-a/model/tokenizer.json \
    $BIN $W/$t $W/seeds/$t -max_total_time=$SECS -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix=Tests/Fixtures/fuzz/$t/ -print_final_stats=1 > $W/$t.log 2>&1
  execs=$(grep -E "stat::number_of_executed_units" $W/$t.log | awk '{print $2}')
  corp=$(ls $W/$t | wc -l)
  after=$(ls Tests/Fixtures/fuzz/$t | wc -l)
  echo "| $t | $SECS | ${execs:-?} | $corp | $((after - before)) |" >> $W/summary.md
  grep -E "ERROR|SUMMARY" $W/$t.log | head -3
done
cat $W/summary.md
