//! The event loop: ticks, message delivery, timers, manual delivery.

use super::*;

impl<C: Core> Cluster<C> {
    // ------------------------------------------------------------------
    // The event loop
    // ------------------------------------------------------------------

    pub(super) fn schedule(&mut self, at_ns: u64, event: Event<C::Message>) {
        self.next_seq += 1;
        self.queue.insert((at_ns, self.next_seq), event);
    }

    /// Schedules [`Stepped::Timer`]`(token)` at virtual time `at_ns`.
    pub fn schedule_timer(&mut self, at_ns: u64, token: u64) {
        self.schedule(at_ns.max(self.now_ns), Event::Timer(token));
    }

    /// Time of the next scheduled event.
    pub fn next_event_ns(&self) -> Option<u64> {
        self.queue.keys().next().map(|(at, _)| *at)
    }

    /// Processes the next event if it is due at or before `limit_ns`;
    /// otherwise moves the clock to `limit_ns` and returns
    /// [`Stepped::Idle`]. Does nothing once a violation is recorded.
    pub fn step_event(&mut self, limit_ns: u64) -> Stepped {
        if self.failure.is_some() {
            return Stepped::Idle;
        }
        let due = matches!(self.queue.keys().next(), Some((at, _)) if *at <= limit_ns);
        if !due {
            self.now_ns = self.now_ns.max(limit_ns);
            return Stepped::Idle;
        }
        let ((at, _), event) = self.queue.pop_first().expect("checked non-empty");
        self.now_ns = self.now_ns.max(at);
        self.stats.events += 1;
        match event {
            Event::Timer(token) => return Stepped::Timer(token),
            Event::Tick(id) => self.on_tick_event(id),
            Event::Deliver { from, to, message } => self.on_deliver(from, to, message),
        }
        if self.failure.is_none() && !self.invariants.is_empty() {
            self.run_invariants();
        }
        Stepped::Internal
    }

    /// Advances virtual time by `ticks` nominal ticks, processing every
    /// event due meanwhile (each node ticks about `ticks` times).
    pub fn run_ticks(&mut self, ticks: u64) {
        let limit = self.now_ns + ticks * self.tick_ns;
        self.run_to(limit, &mut |_| false);
    }

    /// Runs until `done(self)` holds (checked before the first and after
    /// every event) or `max_ticks` ticks passed; returns whether it held.
    pub fn run_until(&mut self, max_ticks: u64, mut done: impl FnMut(&Cluster<C>) -> bool) -> bool {
        let limit = self.now_ns + max_ticks * self.tick_ns;
        if done(self) {
            return true;
        }
        self.run_to(limit, &mut done)
    }

    pub(super) fn run_to(
        &mut self,
        limit_ns: u64,
        done: &mut dyn FnMut(&Cluster<C>) -> bool,
    ) -> bool {
        loop {
            match self.step_event(limit_ns) {
                Stepped::Idle => return done(self),
                Stepped::Internal | Stepped::Timer(_) => {
                    if done(self) {
                        return true;
                    }
                }
            }
            if self.failure.is_some() {
                return false;
            }
        }
    }

    pub(super) fn on_tick_event(&mut self, id: NodeId) {
        let Some(index) = self.index_of(id) else {
            return;
        };
        let period = self.nodes[index].effective_tick_period_ns();
        let jitter = self.rng.random_range(0..=period / 50);
        let next = self.now_ns + period + jitter;
        self.schedule(next, Event::Tick(id));
        let node = &mut self.nodes[index];
        if node.paused {
            return;
        }
        if let Some(core) = node.core.as_mut() {
            let _time = virtual_time_span(self.now_ns);
            core.tick();
            node.ticks += 1;
            self.after_input(index);
        }
    }

    /// Ticks one node once, now (manual mode and scripted tests).
    pub fn tick_node(&mut self, id: NodeId) {
        let index = self.index_of(id).unwrap_or_else(|| panic!("no node {id}"));
        let node = &mut self.nodes[index];
        if node.paused {
            return;
        }
        if let Some(core) = node.core.as_mut() {
            core.tick();
            node.ticks += 1;
            self.after_input(index);
            if self.failure.is_none() && !self.invariants.is_empty() {
                self.run_invariants();
            }
        }
    }

    pub(super) fn on_deliver(&mut self, from: NodeId, to: NodeId, message: C::Message) {
        if !self.links.is_up(from, to) {
            self.stats.messages_cut += 1;
            return;
        }
        let Some(index) = self.index_of(to) else {
            self.stats.messages_cut += 1;
            return;
        };
        let node = &mut self.nodes[index];
        if node.paused {
            node.paused_inbox.push((from, message));
            return;
        }
        let Some(core) = node.core.as_mut() else {
            self.stats.messages_cut += 1;
            return;
        };
        let _time = virtual_time_span(self.now_ns);
        core.step(from, message);
        self.stats.messages_delivered += 1;
        self.after_input(index);
    }

    pub(super) fn send(&mut self, from: NodeId, to: NodeId, message: C::Message) {
        self.stats.messages_sent += 1;
        if self.count_bytes {
            let size = postcard::experimental::serialized_size(&message).unwrap_or(0);
            self.stats.bytes_sent += size as u64;
        }
        if self.manual {
            self.in_flight.push_back(InFlight { from, to, message });
            return;
        }
        self.send_unchecked(from, to, message);
    }

    /// Puts a message on the simulated wire (drop, duplication, delay).
    pub(super) fn send_unchecked(&mut self, from: NodeId, to: NodeId, message: C::Message) {
        if self.network.drop_rate > 0.0 && self.rng.random_bool(self.network.drop_rate) {
            self.stats.messages_dropped += 1;
            return;
        }
        if self.network.duplicate_rate > 0.0 && self.rng.random_bool(self.network.duplicate_rate) {
            self.stats.messages_duplicated += 1;
            let drawn = self.draw_delay_ns();
            let delay = self.slowed(from, to, drawn);
            self.schedule(
                self.now_ns + delay,
                Event::Deliver {
                    from,
                    to,
                    message: message.clone(),
                },
            );
        }
        let drawn = self.draw_delay_ns();
        let delay = self.slowed(from, to, drawn);
        self.schedule(self.now_ns + delay, Event::Deliver { from, to, message });
    }

    /// Applies [`Cluster::slow_node`] factors (no random draw, so runs
    /// without slow nodes are unchanged).
    fn slowed(&self, from: NodeId, to: NodeId, delay_ns: u64) -> u64 {
        if self.slowdown.is_empty() {
            return delay_ns;
        }
        let factor = [from, to]
            .iter()
            .filter_map(|n| self.slowdown.get(n))
            .fold(1.0_f64, |a, b| a.max(*b));
        ((delay_ns as f64) * factor) as u64
    }

    pub(super) fn draw_delay_ns(&mut self) -> u64 {
        let config = &self.network;
        let mut ticks = if config.delay_ticks_max > config.delay_ticks_min {
            self.rng
                .random_range(config.delay_ticks_min..config.delay_ticks_max)
        } else {
            config.delay_ticks_min
        };
        if config.long_delay_rate > 0.0
            && config.long_delay_ticks > 0.0
            && self.rng.random_bool(config.long_delay_rate)
        {
            ticks += self.rng.random_range(0.0..config.long_delay_ticks);
        }
        ((ticks * self.tick_ns as f64) as u64).max(1)
    }

    /// Delivers (or drops) in-flight messages of manual mode: `decide` sees
    /// each message in send order and returns `Some(true)` to deliver it,
    /// `Some(false)` to drop it, `None` to leave it in flight. Returns the
    /// delivered and dropped messages. Messages sent while delivering stay
    /// in flight.
    pub fn deliver_where(
        &mut self,
        mut decide: impl FnMut(&InFlight<C::Message>) -> Option<bool>,
    ) -> Delivered<C::Message> {
        let batch = std::mem::take(&mut self.in_flight);
        let mut keep = VecDeque::new();
        let mut delivered = Vec::new();
        let mut dropped = Vec::new();
        let mut to_deliver = Vec::new();
        for message in batch {
            match decide(&message) {
                Some(true) => to_deliver.push(message),
                Some(false) => dropped.push(message),
                None => keep.push_back(message),
            }
        }
        self.in_flight = keep;
        for message in to_deliver {
            delivered.push(message.clone());
            self.stats.events += 1;
            self.on_deliver(message.from, message.to, message.message);
            if self.failure.is_none() && !self.invariants.is_empty() {
                self.run_invariants();
            }
        }
        (delivered, dropped)
    }
}

/// The simulator's clock on every log line a core writes while it handles
/// one input (`RUST_LOG=raft=debug consensus-sim ...` shows `sim{ms=1503.2}`).
fn virtual_time_span(now_ns: u64) -> tracing::span::EnteredSpan {
    tracing::debug_span!("sim", ms = now_ns as f64 / 1e6).entered()
}
