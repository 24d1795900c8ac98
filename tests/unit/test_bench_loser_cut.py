"""bench.loser_cut's count of a loser's tokens after the winner's first token, from the
simulator's log: exact from each token's write time, and the earlier estimate beside it."""

from __future__ import annotations

from typing import Any

from bench.loser_cut import loser_stats, pair_line


def record(key: str, outcome: str, times: list[float]) -> dict[str, Any]:
    return {
        "last_user_text": key,
        "outcome": outcome,
        "tokens_sent": len(times),
        "token_times": times,
        "first_token": times[0] if times else None,
    }


def test_tokens_written_after_the_winners_first_token_are_counted_from_their_times() -> None:
    records = [
        # a loser that wrote 3 tokens, the last 2 after the winner's first token (at 1.000)
        record("r-1", "completed", [1.000, 1.005]),
        record("r-1", "client_disconnect", [0.999, 1.001, 1.004]),
        # a loser cut before its first token
        record("r-2", "client_disconnect", []),
        record("r-2", "completed", [2.000]),
        # a loser cut before its request reached the simulator: only the winner is logged
        record("r-3", "completed", [3.000]),
        # both read to the end: the cut never came
        record("r-4", "completed", [4.000]),
        record("r-4", "completed", [4.001]),
        # another run's requests are not this run's
        record("other-1", "client_disconnect", [5.0, 5.1]),
    ]
    stats = loser_stats(records, "r")
    assert stats["races"] == 3
    assert stats["losers_unseen"] == 1
    assert stats["losers_read_to_end"] == 1
    assert stats["after_winner_first_token_max"] == 2
    assert stats["loser_tokens_max"] == 3


def test_a_burst_written_late_but_before_the_winners_token_is_not_counted_after_it() -> None:
    # The simulator ran late: the loser's first token was due well before the winner's,
    # and the tokens it owed went out in a burst, all before the winner's first token.
    records = [
        record("r-1", "completed", [1.000]),
        record("r-1", "client_disconnect", [0.990, 0.9991, 0.9992, 0.9993, 0.9994]),
    ]
    stats = loser_stats(records, "r")
    assert stats["after_winner_first_token_max"] == 0
    assert stats["estimated_after_max"] == 2  # the fixed gap put 2 of them after it


def test_the_k2_cost_per_round_pairs_each_race_round_with_its_single_round() -> None:
    line = pair_line({"single": [1.5, 2.0, 1.6], "race2": [2.0, 2.3, 2.2]})
    assert line == "k=2 minus single per round: median +0.50 ms (+0.30, +0.50, +0.60)"
    assert pair_line({"single": [], "race2": []}) == "k=2 minus single per round: none"


def test_tokens_after_the_winners_first_are_split_at_the_gateways_cut() -> None:
    records = [
        record("r-1", "completed", [1.000]),
        record("r-1", "client_disconnect", [0.990, 1.004, 1.009, 1.014, 1.019]),
    ]
    # the gateway cut the loser at 1.010: two tokens before it, two into the reset socket
    stats = loser_stats(records, "r", {"r-1": 1.010})
    assert stats["after_winner_first_token_max"] == 4
    assert stats["before_cut_max"] == 2 and stats["cut_clocked"] == 1
    assert loser_stats(records, "r")["cut_clocked"] == 0  # no clock: nothing split
