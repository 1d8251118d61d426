//! Read barriers: ZooKeeper's `sync()`.
//!
//! In ZooKeeper a client calls `sync()` and then reads from its server: the
//! server forwards SYNC to the leader, which answers once everything it had
//! committed is on its way to that server (the answer travels behind the
//! COMMITs on the FIFO channel). Here:
//!
//! * at the leader, the barrier's read point is the commit index when it
//!   arrives; the leader then confirms it still leads with a new ping round
//!   answered by a quorum (a deposed leader would otherwise answer with a
//!   stale point: ZooKeeper's `sync()` alone is not linearizable, this is),
//!   and completes the ticket once it has applied the read point;
//! * at a follower, `read_barrier` sends SYNC to the leader, which runs the
//!   same confirmation and answers with the zxid of its read point; the
//!   follower completes once it has applied that zxid (it is committed and
//!   the follower's history is a prefix of the leader's).
//!
//! A barrier never has an effect, so when the role changes it fails with
//! `Rejected::Unavailable`.

use consensus_api::{NodeId, Rejected, Ticket};

use crate::core::ZabCore;
use crate::message::{Message, Sync, SyncResponse};
use crate::role::{FollowerRead, LeaderPhase, LeaderRead, ReadOrigin, Role};

impl ZabCore {
    /// `read_barrier`.
    pub(crate) fn start_read(&mut self) -> Result<Ticket, Rejected> {
        match &self.role {
            Role::Leading(leader) if leader.phase == LeaderPhase::Broadcast => {
                let ticket = self.ticket_counter.next_ticket();
                self.queue_leader_read(ReadOrigin::Local(ticket));
                Ok(ticket)
            }
            Role::Following(_) => {
                let ticket = self.ticket_counter.next_ticket();
                let Role::Following(follower) = &mut self.role else {
                    unreachable!("checked above");
                };
                follower.next_request += 1;
                let request = follower.next_request;
                follower.reads.insert(
                    request,
                    FollowerRead {
                        ticket,
                        target: None,
                    },
                );
                if let Some(epoch) = follower.phase.epoch() {
                    let leader = follower.leader;
                    self.send(leader, Message::Sync(Sync { epoch, request }));
                }
                Ok(ticket)
            }
            _ => Err(Rejected::Unavailable),
        }
    }

    fn queue_leader_read(&mut self, origin: ReadOrigin) {
        let index = self.log.commit_index;
        let zxid = self.log.commit_zxid();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        leader.reads.push(LeaderRead {
            origin,
            index,
            zxid,
            round: leader.ping_round + 1,
            confirmed: false,
        });
        leader.round_needed = true;
        self.confirm_reads();
    }

    /// Leader: SYNC from a follower.
    pub(crate) fn on_sync(&mut self, from: NodeId, message: Sync) {
        let Role::Leading(leader) = &self.role else {
            return;
        };
        if message.epoch != leader.epoch || leader.phase != LeaderPhase::Broadcast {
            // Not established yet: the follower asks again.
            return;
        }
        self.queue_leader_read(ReadOrigin::Remote {
            node: from,
            request: message.request,
        });
    }

    /// Leader: confirm reads whose ping round a quorum answered; answer
    /// confirmed remote ones.
    pub(crate) fn confirm_reads(&mut self) {
        let membership = self.log.membership();
        let me = self.id();
        let Role::Leading(leader) = &mut self.role else {
            return;
        };
        let epoch = leader.epoch;
        let followers = &leader.followers;
        let mut answers = Vec::new();
        leader.reads.retain_mut(|read| {
            if !read.confirmed {
                read.confirmed = membership.is_quorum(|n| {
                    n == me || followers.get(&n).is_some_and(|p| p.round >= read.round)
                });
            }
            match read.origin {
                ReadOrigin::Remote { node, request } if read.confirmed => {
                    answers.push((node, request, read.zxid));
                    false
                }
                _ => true,
            }
        });
        for (node, request, zxid) in answers {
            let response = SyncResponse {
                epoch,
                request,
                zxid,
            };
            self.send(node, Message::SyncResponse(response));
        }
    }

    /// Follower: the leader's answer to SYNC.
    pub(crate) fn on_sync_response(&mut self, from: NodeId, message: SyncResponse) {
        let Role::Following(follower) = &mut self.role else {
            return;
        };
        if follower.leader != from || follower.phase.epoch() != Some(message.epoch) {
            return;
        }
        follower.silence_ticks = 0;
        if let Some(read) = follower.reads.get_mut(&message.request) {
            read.target.get_or_insert(message.zxid);
        }
    }
}
