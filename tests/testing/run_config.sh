# Shell helper for the tests that drive `radlads-coord run` from a script (tests/chaos/,
# tests/slurm/): the run config of the shortened tiny conversion, as tests/cli/run_command_test.cpp
# writes it in C++ (WriteConfig).
#
#   write_run_config FILE SOURCE_DIR RECIPE CLUSTER
#
# RECIPE and CLUSTER are paths (tests/data/run/recipe-rwkv7.yaml, .../cluster.yaml, ...).
write_run_config() {
  cat > "$1" <<EOF2
teacher: $2/data/tiny-teacher
recipe: $3
cluster: $4
data:
  train: $2/data/austen/northanger_abbey.txt.gz
  heldout: $2/data/austen/persuasion.txt.gz
eval:
  max_tokens: 4096
  seq_len: 64
  batch: 16
  generate_tokens: 8
EOF2
}
