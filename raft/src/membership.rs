//! Membership change by joint consensus (Raft paper §6; thesis §4.3 and
//! §4.2.1 for catching up new servers).
//!
//! A configuration takes effect on every node as soon as it is **appended**
//! to its log (not when committed), and a truncated configuration entry
//! takes its effect back with it. A change from `C_old` to `C_new` runs in
//! stages, driven by the leader:
//!
//! 1. **Catch-up**: nodes that are to become voters but are not members yet
//!    are first added as learners (a stable configuration: learners do not
//!    vote, so adding them is always safe). They are promoted only once
//!    they hold every committed entry, so a new voter never stalls commits.
//! 2. **Joint** `C_old,new`: every decision (election, commit) needs a
//!    majority of `C_old` *and* a majority of `C_new`; no two disjoint
//!    majorities can exist while the cluster moves.
//! 3. Once `C_old,new` is committed the leader appends **`C_new`**. Any
//!    leader that finds a committed joint configuration in force does the
//!    same, so a crash mid-transition is finished by the next leader (or,
//!    when `C_old,new` was not replicated to the new leader, rolled back:
//!    the new leader never had it in force and truncates it from others).
//! 4. When `C_new` is committed the change completes; a leader that is not
//!    a voter of `C_new` then hands over (TimeoutNow to the most up-to-date
//!    voter) and steps down.
//!
//! Changes that only add or remove learners skip the joint stage.

use std::collections::BTreeSet;

use consensus_api::{Membership, MembershipError, NodeId, Payload, Rejected, Ticket};

use crate::core::{RaftCore, Role};
use crate::message::{Message, TimeoutNow};

/// Where a membership change driven by the leader stands.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ChangeStage {
    /// Waiting for new voters (learners now) to catch up.
    CatchingUp,
    /// `C_old,new` appended, waiting for it to commit.
    Joint,
    /// The target configuration appended, waiting for it to commit.
    Final,
}

/// A membership change requested through `change_membership`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MembershipChange {
    /// Finished when the target configuration is committed.
    pub(crate) ticket: Ticket,
    /// The stable configuration asked for.
    pub(crate) target: Membership,
    /// Current stage.
    pub(crate) stage: ChangeStage,
    /// Ticks spent catching up (the change is abandoned after a while).
    pub(crate) elapsed: u64,
}

/// Election timeouts a new voter may take to catch up before the change is
/// abandoned (it stays a learner).
const CATCH_UP_ELECTION_TIMEOUTS: u64 = 20;

impl RaftCore {
    /// `change_membership`: validate, then start the staged change.
    pub(crate) fn start_membership_change(&mut self, to: Membership) -> Result<Ticket, Rejected> {
        to.validate().map_err(Rejected::InvalidMembership)?;
        if to.is_joint() {
            return Err(Rejected::InvalidMembership(MembershipError::TargetIsJoint));
        }
        self.check_can_serve()?;
        let current = self.log.membership().clone();
        let config_index = self.log.membership_index();
        let Role::Leader(leader) = &mut self.role else {
            return Err(Rejected::NotLeader {
                hint: self.leader_id,
            });
        };
        if leader.membership_change.is_some()
            || current.is_joint()
            || config_index > self.commit_index
        {
            return Err(Rejected::ChangeInProgress);
        }
        let ticket = self.ticket_counter.next_ticket();
        if to == current {
            self.completed.push((ticket, Ok(config_index)));
            return Ok(ticket);
        }
        tracing::debug!(id = self.id, from = %current, to = %to, "membership change starts");
        let unknown: BTreeSet<NodeId> = to
            .voters
            .iter()
            .filter(|n| !current.contains(**n))
            .copied()
            .collect();
        if let Role::Leader(leader) = &mut self.role {
            leader.membership_change = Some(MembershipChange {
                ticket,
                target: to,
                stage: ChangeStage::CatchingUp,
                elapsed: 0,
            });
        }
        if !unknown.is_empty() {
            let mut staging = current;
            staging.learners.extend(unknown);
            self.append_entry(Payload::Membership(staging));
        }
        self.advance_membership_change();
        Ok(ticket)
    }

    /// Moves the change (or an inherited joint configuration) forward once
    /// the configuration in force is committed.
    pub(crate) fn advance_membership_change(&mut self) {
        let current = self.log.membership().clone();
        let committed = self.log.membership_index() <= self.commit_index;
        let commit = self.commit_index;
        let id = self.id;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if !committed {
            return;
        }
        if current.is_joint() {
            // Stage 3, also for a leader that inherited C_old,new.
            if let Some(change) = &mut leader.membership_change {
                change.stage = ChangeStage::Final;
            }
            tracing::debug!(id, "joint configuration committed: leaving it");
            self.append_entry(Payload::Membership(current.leave_joint()));
            return;
        }
        match leader.membership_change.as_ref().map(|c| c.stage) {
            Some(ChangeStage::CatchingUp) => {
                let Some(change) = &mut leader.membership_change else {
                    return;
                };
                let caught_up = change.target.voters.difference(&current.voters).all(|n| {
                    *n == id
                        || leader
                            .progress
                            .get(n)
                            .is_some_and(|p| p.match_index >= commit)
                });
                if !caught_up {
                    return;
                }
                let next = if change.target.voters == current.voters {
                    change.stage = ChangeStage::Final;
                    change.target.clone()
                } else {
                    change.stage = ChangeStage::Joint;
                    current.joint_to(&change.target)
                };
                self.append_entry(Payload::Membership(next));
            }
            Some(ChangeStage::Final) => {
                if let Some(change) = leader.membership_change.take() {
                    tracing::debug!(id, to = %current, "membership change complete");
                    self.completed
                        .push((change.ticket, Ok(self.log.membership_index())));
                }
                self.maybe_step_down_removed();
            }
            Some(ChangeStage::Joint) | None => self.maybe_step_down_removed(),
        }
    }

    /// A leader that is no longer a voter of the committed configuration in
    /// force hands leadership to the most up-to-date voter and steps down.
    fn maybe_step_down_removed(&mut self) {
        let membership = self.log.membership();
        if membership.is_voter(self.id) || self.log.membership_index() > self.commit_index {
            return;
        }
        let last = self.log.last_index();
        let Role::Leader(leader) = &self.role else {
            return;
        };
        let successor = leader
            .progress
            .iter()
            .filter(|(peer, p)| membership.is_voter(**peer) && p.match_index == last)
            .map(|(peer, _)| *peer)
            .next();
        tracing::debug!(
            id = self.id,
            ?successor,
            "removed from the configuration: steps down"
        );
        if let Some(successor) = successor {
            self.send(
                successor,
                Message::TimeoutNow(TimeoutNow { term: self.term }),
            );
        }
        self.become_follower(self.term, None);
    }

    /// Abandons a catch-up that takes too long (the new nodes stay learners).
    pub(crate) fn tick_membership_change(&mut self) {
        let limit = CATCH_UP_ELECTION_TIMEOUTS * self.config.election_timeout_ticks_max;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let Some(change) = &mut leader.membership_change else {
            return;
        };
        if change.stage != ChangeStage::CatchingUp {
            return;
        }
        change.elapsed += 1;
        if change.elapsed >= limit {
            tracing::debug!(
                id = self.id,
                "new voters did not catch up: change abandoned"
            );
            let ticket = change.ticket;
            leader.membership_change = None;
            self.completed.push((ticket, Err(Rejected::Unavailable)));
        } else {
            self.advance_membership_change();
        }
    }
}
