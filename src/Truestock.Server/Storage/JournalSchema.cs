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
    ];
}
