//! Client requests: raw proposals and the key-value convenience operations.

use super::*;

impl<C: Core> Cluster<C> {
    // ------------------------------------------------------------------
    // Client requests
    // ------------------------------------------------------------------

    pub(super) fn with_live_core<T>(
        &mut self,
        id: NodeId,
        call: impl FnOnce(&mut C) -> Result<T, Rejected>,
    ) -> Result<T, Rejected> {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        let node = &mut self.nodes[index];
        if node.paused && !node.frozen {
            return Err(Rejected::Unavailable);
        }
        let Some(core) = node.core.as_mut() else {
            return Err(Rejected::Unavailable);
        };
        let result = call(core);
        self.after_input(index);
        if self.failure.is_none() && !self.invariants.is_empty() {
            self.run_invariants();
        }
        result
    }

    /// Proposes a raw command at the node (crashed or paused nodes answer
    /// [`Rejected::Unavailable`]). The command is applied to the
    /// session-wrapped key-value machine, which answers malformed commands
    /// with an error response, so any bytes may be proposed.
    pub fn propose(&mut self, id: NodeId, command: Bytes) -> Result<Ticket, Rejected> {
        self.with_live_core(id, |core| core.propose(command))
    }

    /// Asks the node for a read barrier.
    pub fn read_barrier(&mut self, id: NodeId) -> Result<Ticket, Rejected> {
        self.with_live_core(id, |core| core.read_barrier())
    }

    /// Asks the node to change the membership.
    pub fn change_membership(&mut self, id: NodeId, to: Membership) -> Result<Ticket, Rejected> {
        self.with_live_core(id, |core| core.change_membership(to))
    }

    /// Asks the node to hand leadership to `to`.
    pub fn transfer_leadership(&mut self, id: NodeId, to: NodeId) -> Result<(), Rejected> {
        self.with_live_core(id, |core| core.transfer_leadership(to))
    }

    pub(super) fn next_kv_command(&mut self, command: KvCommand) -> Bytes {
        self.kv_sequence += 1;
        SessionCommand {
            client: self.kv_client,
            sequence: self.kv_sequence,
            body: command.encode(),
        }
        .encode()
    }

    /// Writes `value` to `key` through the node (a session-wrapped command
    /// of the cluster's own client). Follow it with [`Cluster::kv_outcome`].
    pub fn write(&mut self, id: NodeId, key: &str, value: i64) -> Result<Ticket, Rejected> {
        let command = self.next_kv_command(KvCommand::Write {
            key: key.to_owned(),
            value,
        });
        let ticket = self.propose(id, command)?;
        self.track_kv(id, ticket, PendingKv::Command);
        Ok(ticket)
    }

    /// Compare-and-set through the node.
    pub fn cas(
        &mut self,
        id: NodeId,
        key: &str,
        expected: i64,
        new: i64,
    ) -> Result<Ticket, Rejected> {
        let command = self.next_kv_command(KvCommand::Cas {
            key: key.to_owned(),
            expected,
            new,
        });
        let ticket = self.propose(id, command)?;
        self.track_kv(id, ticket, PendingKv::Command);
        Ok(ticket)
    }

    /// A linearizable read of `key` through the node: a read barrier, then
    /// a local query once the node applied the barrier index.
    pub fn read(&mut self, id: NodeId, key: &str) -> Result<Ticket, Rejected> {
        let ticket = self.read_barrier(id)?;
        self.track_kv(
            id,
            ticket,
            PendingKv::Read {
                key: key.to_owned(),
                at: None,
            },
        );
        Ok(ticket)
    }

    pub(super) fn track_kv(&mut self, id: NodeId, ticket: Ticket, pending: PendingKv) {
        let incarnation = self.node(id).incarnation;
        // The ticket may have finished inside the call already.
        if let Some(result) = self.node(id).outcomes.get(&ticket).cloned() {
            let response = match &result {
                Ok(at) => self.node(id).responses.get(at).cloned(),
                Err(_) => None,
            };
            self.kv_pending.insert((id, incarnation, ticket), pending);
            self.finish_kv(id, incarnation, ticket, &result, response.as_ref());
        } else {
            self.kv_pending.insert((id, incarnation, ticket), pending);
        }
    }

    pub(super) fn finish_kv(
        &mut self,
        id: NodeId,
        incarnation: u64,
        ticket: Ticket,
        result: &Result<LogIndex, Rejected>,
        response: Option<&Bytes>,
    ) {
        let key = (id, incarnation, ticket);
        let Some(pending) = self.kv_pending.get_mut(&key) else {
            return;
        };
        let outcome = match (pending, result) {
            (_, Err(rejected)) => Some(Err(OpError::Rejected(rejected.clone()))),
            (PendingKv::Command, Ok(_)) => Some(match response {
                Some(bytes) => match Sessions::<KvStore>::decode_response(bytes) {
                    Ok(body) => Ok(KvResponse::decode(&body)),
                    Err(error) => Err(OpError::Session(error)),
                },
                None => Err(OpError::ResponseLost),
            }),
            (PendingKv::Read { at, .. }, Ok(index)) => {
                *at = Some(*index);
                None
            }
        };
        let Some(outcome) = outcome else {
            self.resolve_kv_reads(id);
            return;
        };
        self.kv_pending.remove(&key);
        self.kv_done.insert((id, ticket), outcome);
    }

    pub(super) fn resolve_kv_reads(&mut self, id: NodeId) {
        if self.kv_pending.is_empty() {
            return;
        }
        let incarnation = self.node(id).incarnation;
        let applied = self.node(id).applied_index;
        let ready: Vec<((NodeId, u64, Ticket), String)> = self
            .kv_pending
            .iter()
            .filter_map(|(key, pending)| match pending {
                PendingKv::Read {
                    key: register,
                    at: Some(at),
                } if key.0 == id && key.1 == incarnation && *at <= applied => {
                    Some((*key, register.clone()))
                }
                _ => None,
            })
            .collect();
        for (key, register) in ready {
            self.kv_pending.remove(&key);
            let answer = KvResponse::decode(&self.node(id).sm.query(&encode_read(&register)));
            self.kv_done.insert((key.0, key.2), Ok(answer));
        }
    }

    /// The result of a [`Cluster::write`] / [`Cluster::cas`] /
    /// [`Cluster::read`] once known.
    pub fn kv_outcome(&self, id: NodeId, ticket: Ticket) -> Option<&KvOutcome> {
        self.kv_done.get(&(id, ticket))
    }

    /// Writes through the node and runs until the result is known or
    /// `max_ticks` passed ([`OpError::Timeout`]).
    pub fn write_sync(&mut self, id: NodeId, key: &str, value: i64, max_ticks: u64) -> KvOutcome {
        let ticket = self.write(id, key, value).map_err(OpError::Rejected)?;
        self.wait_kv(id, ticket, max_ticks)
    }

    /// Compare-and-set through the node, waiting for the result.
    pub fn cas_sync(
        &mut self,
        id: NodeId,
        key: &str,
        expected: i64,
        new: i64,
        max_ticks: u64,
    ) -> KvOutcome {
        let ticket = self
            .cas(id, key, expected, new)
            .map_err(OpError::Rejected)?;
        self.wait_kv(id, ticket, max_ticks)
    }

    /// Linearizable read through the node, waiting for the result.
    pub fn read_sync(&mut self, id: NodeId, key: &str, max_ticks: u64) -> KvOutcome {
        let ticket = self.read(id, key).map_err(OpError::Rejected)?;
        self.wait_kv(id, ticket, max_ticks)
    }

    pub(super) fn wait_kv(&mut self, id: NodeId, ticket: Ticket, max_ticks: u64) -> KvOutcome {
        self.run_until(max_ticks, |c| c.kv_done.contains_key(&(id, ticket)));
        self.kv_done
            .remove(&(id, ticket))
            .unwrap_or(Err(OpError::Timeout))
    }
}
