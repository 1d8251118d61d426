#!/usr/bin/env bash
# Mutation testing with cargo-mutants (https://mutants.rs): every mutant of
# the files that hold a crate's safety rules, tested by that crate's own
# tests (unit tests, scripted scenarios and its bounded simulator slice in
# tests/sim.rs). A mutant that survives is a rule the tests would let break.
#
#   cargo install cargo-mutants --locked
#   scripts/mutants.sh api                 # consensus-api: quorums, sessions, the Ready loop
#   scripts/mutants.sh raft                # or multipaxos, paxos, zab
#   scripts/mutants.sh raft --shard 0/4    # any extra cargo-mutants arguments
#
# Results go to mutants-out/<crate>/mutants.out (outcomes.json, caught.txt,
# missed.txt, timeout.txt, unviable.txt). Each mutant rebuilds the crate and
# runs its tests, so a core takes hours on 2 cores: a campaign, not a CI step.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"

crate=${1:?usage: scripts/mutants.sh api|raft|multipaxos|paxos|zab [cargo-mutants args]}
shift
case "$crate" in
  api)        package=consensus-api
              files=(consensus-api/src/membership.rs consensus-api/src/sessions.rs consensus-api/src/driver.rs) ;;
  raft)       package=raft
              files=(raft/src/election.rs raft/src/leader.rs raft/src/follower.rs raft/src/replication.rs raft/src/log.rs raft/src/read.rs) ;;
  multipaxos) package=multipaxos
              files=(multipaxos/src/acceptor.rs multipaxos/src/election.rs multipaxos/src/leader.rs multipaxos/src/log.rs) ;;
  paxos)      package=paxos
              files=(paxos/src/acceptor.rs paxos/src/proposer.rs paxos/src/learner.rs) ;;
  zab)        package=zab
              files=(zab/src/election.rs zab/src/discovery.rs zab/src/sync.rs zab/src/broadcast.rs zab/src/history.rs zab/src/read.rs) ;;
  *) echo "unknown crate '$crate': use api, raft, multipaxos, paxos or zab" >&2; exit 2 ;;
esac

args=(--package "$package" --output "mutants-out/$crate" --jobs 1)
for file in "${files[@]}"; do
  [ -f "$file" ] || { echo "missing $file: update scripts/mutants.sh" >&2; exit 2; }
  args+=(--file "$file")
done
mkdir -p "mutants-out/$crate"
exec cargo mutants "${args[@]}" "$@"
