namespace Truestock.Server.Storage;

/// <summary>The journal's DDL, written once for both stores; only the binary column type differs.</summary>
internal static class JournalSchema
{
    public static string[] Migrations(string binaryType) =>
    [
        $"""
        CREATE TABLE commands (
            seq BIGINT NOT NULL PRIMARY KEY,
            recorded_at TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL);
        CREATE TABLE ledger (
            id BIGINT NOT NULL PRIMARY KEY,
            command_seq BIGINT NOT NULL,
            sku TEXT NOT NULL,
            location_id TEXT NOT NULL,
            event_id TEXT NULL,
            reservation_id TEXT NULL,
            type TEXT NOT NULL,
            quantity BIGINT NOT NULL,
            occurred_at TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            status TEXT NOT NULL,
            source TEXT NOT NULL,
            correlation_id TEXT NOT NULL,
            on_hand_after BIGINT NOT NULL,
            available_after BIGINT NOT NULL);
        CREATE INDEX ix_ledger_position ON ledger (sku, location_id, id);
        CREATE INDEX ix_ledger_event ON ledger (event_id);
        CREATE TABLE exceptions (
            id BIGINT NOT NULL PRIMARY KEY,
            command_seq BIGINT NOT NULL,
            type TEXT NOT NULL,
            sku TEXT NULL,
            location_id TEXT NULL,
            event_id TEXT NULL,
            reservation_id TEXT NULL,
            source TEXT NULL,
            quantity BIGINT NOT NULL,
            detail TEXT NOT NULL,
            recorded_at TEXT NOT NULL);
        CREATE INDEX ix_exceptions_type ON exceptions (type, id);
        CREATE TABLE event_ids (
            event_id TEXT NOT NULL PRIMARY KEY,
            fingerprint TEXT NOT NULL);
        CREATE TABLE reservation_ids (
            reservation_id TEXT NOT NULL PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            archived_view TEXT NULL);
        CREATE TABLE snapshots (
            last_seq BIGINT NOT NULL PRIMARY KEY,
            taken_at TEXT NOT NULL,
            format TEXT NOT NULL,
            data {binaryType} NOT NULL);
        """,
        // 2: the channel publication outbox. One row per (channel, SKU): the latest ATS the engine
        // computed (written in the same transaction as the batch that changed it) and what the
        // channel last acknowledged. Times are Unix milliseconds so that they compare as numbers.
        """
        CREATE TABLE channel_sync (
            channel_id TEXT NOT NULL,
            sku TEXT NOT NULL,
            ats BIGINT NOT NULL,
            version BIGINT NOT NULL,
            changed_at_ms BIGINT NOT NULL,
            pending INTEGER NOT NULL,
            published_ats BIGINT NULL,
            published_version BIGINT NOT NULL,
            published_at_ms BIGINT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_ms BIGINT NOT NULL,
            dead INTEGER NOT NULL,
            dead_at_ms BIGINT NULL,
            last_error TEXT NULL,
            PRIMARY KEY (channel_id, sku));
        CREATE INDEX ix_channel_sync_pending ON channel_sync (channel_id, pending, next_attempt_ms);
        CREATE INDEX ix_channel_sync_dead ON channel_sync (channel_id, dead, sku);
        """,
        // 3: the ERP posting outbox. One row per ledger row that is a stock movement, written in the same
        // transaction as the ledger row when ERP posting is on; status is pending, posted, skipped (no on-hand
        // change to book), dead or discarded. The due index serves the poster (fresh rows first in ledger order,
        // then retries when due); the status index serves counts, the oldest pending row and dead-letter pages.
        """
        CREATE TABLE erp_outbox (
            ledger_id BIGINT NOT NULL PRIMARY KEY,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_ms BIGINT NOT NULL,
            enqueued_at_ms BIGINT NOT NULL,
            posted_at_ms BIGINT NULL,
            document_id TEXT NULL,
            dead_at_ms BIGINT NULL,
            error TEXT NULL);
        CREATE INDEX ix_erp_outbox_due ON erp_outbox (status, next_attempt_ms, ledger_id);
        CREATE INDEX ix_erp_outbox_status ON erp_outbox (status, ledger_id);
        """,
        // 4: the exceptions workflow. exception_workflow holds the state people give an exception (status, assignee),
        // keyed by the exception's stable key; an exception nobody has touched has no row and is open. For a dead letter
        // the row belongs to one incident (raised_at_ms = the dead letter's dead_at_ms), so a publication that dies again
        // later starts open. exception_history is the audit trail (who, what, when, and the notes), one row per change,
        // numbered by the workflow row's version so that two concurrent changes can never both be recorded.
        // drift_exceptions holds what reconciliation raises, with the numbers the drift report needs. The index on
        // exceptions serves the oversell report by time; the one on channel_sync lets the list read dead letters in
        // time order without scanning the whole outbox (one row per channel and SKU).
        """
        CREATE TABLE exception_workflow (
            exception_key TEXT NOT NULL PRIMARY KEY,
            source TEXT NOT NULL,
            kind TEXT NOT NULL,
            ref_id BIGINT NULL,
            channel_id TEXT NULL,
            sku TEXT NULL,
            raised_at_ms BIGINT NOT NULL,
            status TEXT NOT NULL,
            assignee TEXT NULL,
            resolved_at_ms BIGINT NULL,
            updated_at_ms BIGINT NOT NULL,
            version BIGINT NOT NULL);
        CREATE INDEX ix_exception_workflow_source ON exception_workflow (source, raised_at_ms);
        CREATE TABLE exception_history (
            exception_key TEXT NOT NULL,
            version BIGINT NOT NULL,
            at_ms BIGINT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            kind TEXT NOT NULL,
            raised_at_ms BIGINT NOT NULL,
            from_status TEXT NULL,
            to_status TEXT NULL,
            assignee_changed INTEGER NOT NULL,
            from_assignee TEXT NULL,
            to_assignee TEXT NULL,
            note_author TEXT NULL,
            note_text TEXT NULL,
            PRIMARY KEY (exception_key, version));
        CREATE INDEX ix_exception_history_status ON exception_history (to_status, at_ms);
        CREATE TABLE drift_exceptions (
            id BIGINT NOT NULL PRIMARY KEY,
            kind TEXT NOT NULL,
            sku TEXT NOT NULL,
            location_id TEXT NULL,
            channel_id TEXT NULL,
            quantity BIGINT NOT NULL,
            expected BIGINT NULL,
            reported BIGINT NULL,
            system TEXT NULL,
            reference TEXT NULL,
            dedupe_key TEXT NULL,
            detail TEXT NOT NULL,
            raised_at_ms BIGINT NOT NULL,
            last_seen_at_ms BIGINT NOT NULL,
            occurrences BIGINT NOT NULL);
        CREATE INDEX ix_drift_exceptions_time ON drift_exceptions (raised_at_ms, id);
        CREATE INDEX ix_drift_exceptions_dedupe ON drift_exceptions (dedupe_key, id);
        CREATE INDEX ix_exceptions_type_time ON exceptions (type, recorded_at);
        CREATE INDEX ix_channel_sync_dead_time ON channel_sync (dead, dead_at_ms, channel_id, sku);
        """,
        // 5: reconciliation (docs/reconciliation.md). Snapshots uploaded from the ERP, the WMS or a channel and their
        // rows (one per SKU and location, or per SKU for a channel, whose location_id is ''); runs comparing a snapshot
        // with the hub; the variances a run found, with their cause and repair; and the proposed counts operators
        // approve or reject. Unit costs and values are decimal text, so that both stores keep them exactly.
        """
        CREATE TABLE recon_snapshots (
            snapshot_id BIGINT NOT NULL PRIMARY KEY,
            system_kind TEXT NOT NULL,
            system_id TEXT NOT NULL,
            as_of TEXT NOT NULL,
            scope TEXT NOT NULL,
            uploaded_at TEXT NOT NULL,
            correlation_id TEXT NOT NULL,
            row_count BIGINT NOT NULL,
            invalid_count BIGINT NOT NULL,
            state TEXT NOT NULL);
        CREATE INDEX ix_recon_snapshots_system ON recon_snapshots (system_kind, system_id, state, snapshot_id);
        CREATE TABLE recon_snapshot_rows (
            snapshot_id BIGINT NOT NULL,
            sku TEXT NOT NULL,
            location_id TEXT NOT NULL,
            line_no BIGINT NOT NULL,
            quantity BIGINT NOT NULL,
            damaged BIGINT NULL,
            inspection BIGINT NULL,
            unit_cost TEXT NULL,
            PRIMARY KEY (snapshot_id, sku, location_id));
        CREATE TABLE recon_runs (
            run_id BIGINT NOT NULL PRIMARY KEY,
            snapshot_id BIGINT NOT NULL,
            system_kind TEXT NOT NULL,
            system_id TEXT NOT NULL,
            as_of TEXT NOT NULL,
            origin TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT NULL,
            state TEXT NOT NULL,
            compared BIGINT NOT NULL,
            matched BIGINT NOT NULL,
            unknown_count BIGINT NOT NULL,
            variance_count BIGINT NOT NULL,
            over_threshold BIGINT NOT NULL,
            units_absolute BIGINT NOT NULL,
            error TEXT NULL);
        CREATE INDEX ix_recon_runs_snapshot ON recon_runs (snapshot_id, run_id);
        CREATE TABLE recon_variances (
            run_id BIGINT NOT NULL,
            variance_no BIGINT NOT NULL,
            sku TEXT NOT NULL,
            location_id TEXT NULL,
            channel_id TEXT NULL,
            expected BIGINT NULL,
            reported BIGINT NOT NULL,
            difference BIGINT NULL,
            unit_cost TEXT NULL,
            value_text TEXT NULL,
            cause TEXT NOT NULL,
            cause_detail TEXT NULL,
            over_threshold INTEGER NOT NULL,
            repair TEXT NOT NULL,
            proposal_id BIGINT NULL,
            exception_ref TEXT NULL,
            PRIMARY KEY (run_id, variance_no));
        CREATE TABLE recon_proposals (
            proposal_id BIGINT NOT NULL PRIMARY KEY,
            run_id BIGINT NOT NULL,
            variance_no BIGINT NOT NULL,
            sku TEXT NOT NULL,
            location_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            quantity BIGINT NOT NULL,
            occurred_at TEXT NOT NULL,
            event_id TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at TEXT NOT NULL,
            decided_at TEXT NULL,
            decided_by TEXT NULL,
            api_key TEXT NULL,
            reason TEXT NULL,
            event_status TEXT NULL,
            event_error TEXT NULL);
        CREATE INDEX ix_recon_proposals_state ON recon_proposals (state, proposal_id);
        """,
    ];
}
