/*
 * cluster/cluster_stall.c — when this node's consumer counts as stuck, so that the
 * consumer thread sets it up again (cluster_int.h: cluster_stall_tick).
 *
 * Why: a pull consumer that is stuck may only ever time out, so the fetch loop alone
 * would not notice. (Stuck was seen after a NATS quorum came back: the stream had two
 * more purges than the node had applied, every fetch timed out, and a purge made through
 * that node waited its 10 s for itself and was answered 503.) So the tick, about once a
 * second, tells cluster_stall_tick the stream's last sequence and what the node has
 * applied: CLUSTER_STALL_TICKS ticks in a row behind the stream with nothing applied is
 * a stall. Each set-up that does not help doubles the wait for the next (to a minute): a
 * stream whose last messages were deleted by hand stays "ahead" with nothing to deliver.
 *
 * But not while the consumer has no leader: when the NATS server that led it goes, its
 * other replicas elect another (4 to 9 s in nats-server), and fetches and its info time
 * out meanwhile. Setting it up again then only raced the election: the delete of a
 * consumer without a leader goes unanswered and the add of the same name times out behind
 * it, which took the node from 5-7 s to 7.5-20 s without applying. So while the last info
 * asked timed out or named no leader (st->leaderless, set by the tick), a stall waits
 * until CLUSTER_STALL_LEADERLESS_MS from its first tick, and is said once. Once a leader is
 * named again, the stall counts its ticks afresh: a fetch still waiting on the old leader
 * must time out before the next one reaches the new, and a set-up at the very next tick
 * (as before session 21) raced that too, once in a CI run.
 *
 * Threads: the consumer thread only (its one cluster_stall_t).
 */
#include "cluster/cluster_int.h"

int cluster_stall_tick(cluster_stall_t *st, uint64_t stream_last, uint64_t applied, int store_failing, int64_t now_ms)
{
    if (st->limit == 0 || applied != st->applied_before)
        st->limit = CLUSTER_STALL_TICKS;
    st->stalled = stream_last > applied && applied == st->applied_before && !store_failing ? st->stalled + 1 : 0;
    st->applied_before = applied;
    if (st->stalled == 0) {
        st->said_leaderless = 0;
        return CLUSTER_STALL_NONE;
    }
    if (st->stalled == 1)
        st->since_ms = now_ms;
    if (st->said_leaderless && !st->leaderless) {
        /* the election is over: the new leader delivers once the next fetch reaches it, so it
         * gets the ticks of a fresh stall (the wait's bound still counts from since_ms) */
        st->said_leaderless = 0;
        st->stalled = 1;
        return CLUSTER_STALL_NONE;
    }
    if (st->stalled < st->limit)
        return CLUSTER_STALL_NONE;
    if (st->leaderless && now_ms - st->since_ms < CLUSTER_STALL_LEADERLESS_MS) {
        if (st->said_leaderless)
            return CLUSTER_STALL_NONE;
        st->said_leaderless = 1;
        return CLUSTER_STALL_WAIT_LEADER;
    }
    st->stalled = 0;
    st->said_leaderless = 0;
    st->limit = st->limit < 60 ? st->limit * 2 : 60;
    return CLUSTER_STALL_SETUP;
}
