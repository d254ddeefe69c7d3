# Source me:  . testbed/ssh/env.sh
# Loads the environment written by up.sh ($TESTBED_DIR/ssh/env.sh):
# FA_SSH_CONFIG, FA_TESTBED_SSH, FA_TESTBED_{DAQ,CLUSTER}_{ALIAS,PORT,ROOT},
# FA_TESTBED_DATA_PATH.  Run testbed/ssh/up.sh first.
_fa_tb_env="${TESTBED_DIR:-/tmp/fulliautomatix-testbed}/ssh/env.sh"
if [ -r "$_fa_tb_env" ]; then
  . "$_fa_tb_env"
else
  echo "testbed/ssh/env.sh: $_fa_tb_env not found; run testbed/ssh/up.sh first" >&2
  unset _fa_tb_env
  return 1 2>/dev/null || exit 1
fi
unset _fa_tb_env
