"""The bad-input catalogue (shared/notes/bad-inputs.md, sections A-H, 109 cases) mapped to the
tests that show lbd's behaviour for each case. The test below fails when a case has no test or a
named test does not exist, so the map cannot drift from the suite.

References: "file.py::test_name" (an integration test here), "Tests/<Target>/<File>.swift::name"
(a Swift test function, or a case label in a table-driven Swift test). H1-H48 are the rows of
test_bad_inputs.CASES (their ids start with the case number), checked by test_catalogue_coverage
there and again here."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

DNS_FAULTS = "test_discovery.py::test_dns_fault_keeps_the_last_good_set"
CODEC = "Tests/DNSResolverTests/DNSCodecTests.swift::"
QUERY = "Tests/DNSResolverTests/DNSQueryTests.swift::"
RESPONSE = "Tests/LBCoreTests/HTTPResponseParserTests.swift::"

CATALOGUE: dict[str, list[str]] = {
    # C. Slow and idle clients
    "S1": ["test_failures.py::test_slowloris_gets_408_at_header_deadline"],
    "S2": ["test_failures.py::test_idle_client_without_request_is_closed"],
    "S3": ["test_failures.py::test_slow_body_times_out",
           "test_resources.py::test_many_slow_uploads_are_bounded_and_answered_408_without_blaming_the_backend"],
    "S4": ["test_resources.py::test_client_that_never_reads_is_closed_at_client_write_without_blaming_the_backend",
           "test_resources.py::test_idle_keepalive_clients_count_against_maxconn_until_client_idle",
           "test_bodies.py::test_200mb_download_with_slow_client_bounded_memory"],
    # D. Backend faults
    "B1": ["test_failures.py::test_refused_backend_is_retried", "test_failures.py::test_all_backends_refusing_gives_503",
           "test_health.py::test_refused_backend_ejected_after_first_failure"],
    "B2": ["test_failures.py::test_blackholed_backend_connect_times_out_and_the_next_one_serves"],
    "B3": ["test_failures.py::test_backend_never_answers_gives_504", "test_health.py::test_hung_backend_leaves_rotation"],
    "B4": ["test_failures.py::test_bad_backend_response_gives_502", "test_failures.py::test_backend_reset_before_response_gives_502"],
    "B5": ["test_failures.py::test_bad_backend_response_gives_502", RESPONSE + "B5"],
    "B6": ["test_failures.py::test_bad_backend_response_gives_502", RESPONSE + "B6"],
    "B7": ["test_failures.py::test_response_with_content_length_and_chunked_uses_chunked_and_is_not_reused", RESPONSE + "B7"],
    "B8": ["test_failures.py::test_bad_backend_response_gives_502", RESPONSE + "B8"],
    "B9": ["test_failures.py::test_truncated_backend_body_aborts_client"],
    "B10": ["test_failures.py::test_backend_reset_mid_body_aborts_the_client"],
    "B11": ["test_failures.py::test_interim_responses_are_swallowed_up_to_a_cap", RESPONSE + "B11"],
    "B12": ["test_failures.py::test_response_without_length_read_to_eof", RESPONSE + "B12"],
    "B13": ["test_failures.py::test_stale_pooled_connection_is_replayed_for_idempotent_requests_only"],
    "B14": ["test_health.py::test_backend_failing_then_recovering",
            "Tests/LBCoreTests/ActiveHealthTests.swift::upToDownAfterFallFailuresAndASuccessRestartsTheCount",
            "Tests/LBCoreTests/ActiveHealthTests.swift::downToUpOnlyAfterRiseSuccesses",
            "test_admin_writes.py::test_drain_lets_in_flight_finish_and_maint_stops_checks_until_ready"],
    # E. DNS/SRV client
    "D1": ["test_discovery.py::test_each_query_has_its_own_source_port_and_a_random_id", QUERY + "idsDifferPerQueryAndAttempt"],
    "D2": ["test_discovery.py::test_each_query_has_its_own_source_port_and_a_random_id"],
    "D3": [DNS_FAULTS, QUERY + "mismatchedRepliesAreDroppedAndTheRightOneWins"],
    "D4": [DNS_FAULTS, QUERY + "mismatchedRepliesAreDroppedAndTheRightOneWins"],
    "D5": [DNS_FAULTS, QUERY + "D5"],
    "D6": [DNS_FAULTS, CODEC + "shortMessagesFail"],
    "D7": [DNS_FAULTS, CODEC + "compressionPointerLoopsAndForwardPointersFail"],
    "D8": [DNS_FAULTS, CODEC + "rdlengthPastTheEndAndWrongAddressLengthsFail"],
    "D9": [CODEC + "rdlengthPastTheEndAndWrongAddressLengthsFail"],
    "D10": [CODEC + "longNamesAndLabelsFail"],
    "D11": [DNS_FAULTS, CODEC + "hugeDeclaredCountsFailCheaply"],
    "D12": ["test_discovery.py::test_truncated_udp_answer_is_asked_again_over_tcp", QUERY + "truncatedUDPAnswerIsAskedAgainOverTCP"],
    "D13": ["test_discovery.py::test_twenty_instances_found_in_two_cycles_and_shuffles_change_nothing",
            "test_dns_fixtures.py::test_consul_udp_cap_without_edns_and_full_answer_with_edns",
            QUERY + "sendsEDNS4096OverUDPWithADeadline"],
    "D14": ["test_discovery.py::test_tcp_fallback_faults_keep_the_last_good_set", DNS_FAULTS],
    "D15": [QUERY + "formerrWithOPTRetriesWithout", QUERY + "replyBiggerThanAdvertisedIsDropped", DNS_FAULTS],
    "D16": [CODEC + "srvTargetDotPortZeroAndDuplicatesAreDroppedAndMissingAddressesReported"],
    "D17": [CODEC + "srvTargetDotPortZeroAndDuplicatesAreDroppedAndMissingAddressesReported"],
    "D18": [CODEC + "ttlOfTwoToTheThirtyFirstOrMoreReadsAsZero",
            "test_discovery.py::test_ttl_zero_is_resolved_no_faster_than_the_floor"],
    "D19": [DNS_FAULTS, "test_discovery.py::test_empty_answer_never_empties_the_pool",
            "test_discovery.py::test_dns_outage_under_load_and_restart_while_dns_is_down"],
    "D20": [CODEC + "srvExtractionUsesOnlyTargetAddressesAndReportsTTL"],
    "D21": ["test_discovery.py::test_reply_storm_is_dropped_counted_and_bounded"],
    # F. Admin API
    "A1": ["test_admin.py::test_non_loopback_admin_without_token_is_refused",
           "test_admin_writes.py::test_missing_token_file_is_created_private_and_without_one_writes_are_forbidden"],
    "A2": ["test_admin_writes.py::test_writes_need_the_token_and_a_refused_write_changes_nothing",
           "test_admin_schema.py::test_a_write_without_the_token_gets_401_and_changes_nothing"],
    "A3": ["test_admin_writes.py::test_bad_input_gets_the_right_status_and_reason", "test_admin.py::test_refusals"],
    "A4": ["test_admin_writes.py::test_bad_input_gets_the_right_status_and_reason",
           "test_admin_schema.py::test_schemathesis_finds_no_5xx_and_no_schema_violation"],
    "A5": ["test_admin_writes.py::test_bad_input_gets_the_right_status_and_reason"],
    "A6": ["test_admin_writes.py::test_browser_origins_and_rebound_host_names_are_refused"],
    "A7": ["test_admin_writes.py::test_admin_slowloris_deep_json_and_concurrent_writes",
           "test_admin_writes.py::test_bad_input_gets_the_right_status_and_reason"],
    # G. VRRPv3 peer
    "V1": ["test_pair.py::test_bad_adverts_are_dropped_and_counted", "Tests/VRRPTests/VRRPCodecTests.swift::dropReasons"],
    "V2": ["test_pair.py::test_bad_adverts_are_dropped_and_counted", "test_pair.py::test_unicast_pair_drops_non_peers"],
    "V3": ["test_pair.py::test_unicast_pair_drops_non_peers"],
    "V4": ["test_pair.py::test_unicast_pair_drops_non_peers",
           "Tests/VRRPTests/VRRPMachineTests.swift::priorityZeroShortensTheWaitToSkewTime"],
    "V5": ["test_pair.py::test_bad_adverts_are_dropped_and_counted", "Tests/VRRPTests/VRRPCodecTests.swift::dropReasons"],
    "V6": ["test_pair.py::test_advert_flood_costs_little_and_changes_nothing", "test_pair.py::test_bad_adverts_are_dropped_and_counted"],
    "V7": ["test_pair.py::test_partition_both_masters_then_the_lower_priority_yields_and_arp_follows",
           "Tests/VRRPTests/VRRPMachineTests.swift::masterYieldsToHigherPriorityAndToEqualPriorityWithHigherAddress"],
    "V8": ["test_pair.py::test_mixed_pair_lbd_master_keepalived_backup", "test_pair.py::test_mixed_pair_keepalived_master_lbd_backup",
           "test_pair.py::test_bad_adverts_are_dropped_and_counted"],
    # H. Resource exhaustion
    "R1": ["test_resources.py::test_fd_exhaustion_pauses_accepts_and_keeps_serving_open_connections"],
    "R2": ["test_resources.py::test_flood_past_maxconn_is_refused_and_the_admin_endpoint_answers"],
    "R3": ["test_resources.py::test_huge_declared_lengths_with_little_data_allocate_nothing", CODEC + "hugeDeclaredCountsFailCheaply"],
    "R4": ["test_keepalive.py::test_pipeline_flood_beyond_depth_is_answered_in_order"],
    "R5": ["test_resources.py::test_many_slow_uploads_are_bounded_and_answered_408_without_blaming_the_backend",
           "test_bodies.py::test_200mb_upload_with_slow_backend_bounded_memory",
           "test_resources.py::test_buffers_of_all_connections_stay_under_max_buffer_total",
           "test_resources.py::test_a_body_stalled_by_max_buffer_total_gets_503_not_408"],
    "R6": ["test_tls.py::test_client_renegotiation_is_refused", "test_tls.py::test_handshake_deadline",
           "test_tls.py::test_plain_http_on_tls_port_gets_400_and_close"],
    "R7": ["test_resources.py::test_malformed_request_flood_is_counted_and_its_logging_rate_limited",
           "Tests/LBCoreTests/ActiveHealthTests.swift::firstProbesOfManyBackendsSpreadOverTheInterval",
           "Tests/LBCoreTests/ActiveHealthTests.swift::nextProbeIsUpToTwentyPercentEarlyAndNeverLate"],
}
for n in range(1, 49):
    CATALOGUE[f"H{n}"] = ["test_bad_inputs.py::test_h45_expect_100_continue" if n == 45 else f"test_bad_inputs.py::CASES:H{n}"]

EXPECTED = ([f"H{n}" for n in range(1, 49)] + [f"S{n}" for n in range(1, 5)] + [f"B{n}" for n in range(1, 15)]
            + [f"D{n}" for n in range(1, 22)] + [f"A{n}" for n in range(1, 8)] + [f"V{n}" for n in range(1, 9)]
            + [f"R{n}" for n in range(1, 8)])


def reference_exists(ref: str) -> bool:
    where, name = ref.split("::", 1)
    if where.endswith(".swift"):
        text = (REPO / where).read_text()
        return re.search(rf"\bfunc {re.escape(name)}\(", text) is not None or re.search(rf'"{re.escape(name)}\b', text) is not None \
            or re.search(rf"\b{re.escape(name)}\b", text) is not None
    if name.startswith("CASES:"):
        import test_bad_inputs
        case = name.split(":", 1)[1]
        return any(c.id.split("-")[0] == case for c in test_bad_inputs.CASES)
    return re.search(rf"^def {re.escape(name)}\(", (HERE / where).read_text(), re.M) is not None


def test_every_catalogue_case_has_a_test_and_every_test_exists():
    assert len(EXPECTED) == 109
    missing = [case for case in EXPECTED if not CATALOGUE.get(case)]
    assert not missing, f"cases without a test: {missing}"
    assert set(CATALOGUE) == set(EXPECTED), set(CATALOGUE) ^ set(EXPECTED)
    dangling = [(case, ref) for case, refs in CATALOGUE.items() for ref in refs if not reference_exists(ref)]
    assert not dangling, f"named tests that do not exist: {dangling}"
