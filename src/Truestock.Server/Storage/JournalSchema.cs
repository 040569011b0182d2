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
    ];
}
