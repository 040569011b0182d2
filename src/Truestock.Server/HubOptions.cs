using Truestock.Core;

namespace Truestock.Server;

/// <summary>Settings of the hub, bound from the "Truestock" configuration section (or --Truestock:Name=value).</summary>
public sealed class HubOptions
{
    /// <summary>SQLite data file (created when absent).</summary>
    public string DataPath { get; set; } = Path.Combine("data", "truestock.db");

    /// <summary>
    /// PostgreSQL connection string (Npgsql form, e.g. "Host=127.0.0.1;Database=truestock;Username=hub").
    /// When set, the hub stores its journal there instead of the SQLite file.
    /// </summary>
    public string? PostgresConnectionString { get; set; }

    /// <summary>Most commands waiting for the sequencing loop; past it writes get 503 with Retry-After.</summary>
    public int QueueCapacityMax { get; set; } = 65_536;

    /// <summary>Most commands decided and committed in one journal transaction (group commit).</summary>
    public int BatchCommandsMax { get; set; } = 4096;

    /// <summary>A snapshot is written after this many journaled commands.</summary>
    public int SnapshotEveryCommands { get; set; } = 100_000;

    /// <summary>How often held reservations are checked for expiry, and a standby polls the journal and the writer lock.</summary>
    public int ExpiryTickMilliseconds { get; set; } = 250;

    /// <summary>How long event ids and ended reservations are remembered for idempotency.</summary>
    public int IdempotencyRetentionDays { get; set; } = Limits.IdempotencyRetentionDaysDefault;

    /// <summary>How often channel publishers look for due retries when no change wakes them.</summary>
    public int ChannelPollMilliseconds { get; set; } = 200;

    /// <summary>Time limit of one HTTP call to a channel's API.</summary>
    public int ChannelHttpTimeoutSeconds { get; set; } = 30;

    /// <summary>Largest request body.</summary>
    public long RequestBodyBytesMax { get; set; } = 4 * 1024 * 1024;

    /// <summary>
    /// Requests per second one client (API key, or remote address without keys) may make to /v1;
    /// past it the hub answers 429 with Retry-After. 0 turns the limit off.
    /// </summary>
    public int ClientRequestsPerSecondMax { get; set; }

    /// <summary>The message-broker consumer; off unless <see cref="RabbitMqOptions.Uri"/> is set.</summary>
    public RabbitMqOptions RabbitMq { get; set; } = new();

    /// <summary>API keys; when empty, the API is open (development). Each key has scopes.</summary>
    public List<ApiKeyOptions> ApiKeys { get; set; } = [];

    /// <summary>
    /// Largest body of a CSV import (POST /v1/imports/...), in bytes; 413 beyond. Imports stream, so
    /// this bounds the time and journal space one request may take, not memory.
    /// </summary>
    public long ImportBodyBytesMax { get; set; } = 1024L * 1024 * 1024;

    /// <summary>Longest row of a CSV import in bytes, line breaks inside quoted fields included; a longer row is a line error.</summary>
    public int ImportLineBytesMax { get; set; } = 4096;

    /// <summary>Most fields in one row of a CSV import; a row with more is a line error, a header with more a 422.</summary>
    public int ImportColumnsMax { get; set; } = 32;
}

/// <summary>One API key and what it may do.</summary>
public sealed class ApiKeyOptions
{
    /// <summary>Name shown in logs (never the key itself).</summary>
    public string Name { get; set; } = "";

    /// <summary>The secret sent as "Authorization: Bearer &lt;key&gt;".</summary>
    public string Key { get; set; } = "";

    /// <summary>Scopes: events:write, reservations:write, availability:read, admin.</summary>
    public List<string> Scopes { get; set; } = [];
}

/// <summary>Where and how the hub consumes canonical events from RabbitMQ.</summary>
public sealed class RabbitMqOptions
{
    /// <summary>AMQP URI, e.g. amqp://user:password@127.0.0.1:5672/vhost. Empty turns the consumer off.</summary>
    public string? Uri { get; set; }

    /// <summary>Queue to consume (declared durable, dead-lettering to <see cref="DeadLetterExchange"/>).</summary>
    public string Queue { get; set; } = "truestock.events";

    /// <summary>Exchange that receives poison messages, with the reason in headers.</summary>
    public string DeadLetterExchange { get; set; } = "truestock.events.dead";

    /// <summary>Queue bound to the dead-letter exchange, where operators find poison messages.</summary>
    public string DeadLetterQueue { get; set; } = "truestock.events.dead";

    /// <summary>Most unacknowledged messages in flight (1–10,000): they are decided together in group commits.</summary>
    public int PrefetchCountMax { get; set; } = 256;

    /// <summary>Largest message body accepted; larger ones are dead-lettered.</summary>
    public int MessageBytesMax { get; set; } = 4 * 1024 * 1024;
}
