namespace Truestock.Core;

/// <summary>Bounds of the model. Every write path is checked against these before it reaches the engine.</summary>
public static class Limits
{
    /// <summary>Largest absolute quantity of an event, line, buffer or safety stock.</summary>
    public const long QuantityMax = 1_000_000_000;
    /// <summary>Longest id (location, channel, event, reservation, source).</summary>
    public const int IdLengthMax = 64;
    /// <summary>Longest SKU.</summary>
    public const int SkuLengthMax = 64;
    /// <summary>Longest display name or reason.</summary>
    public const int TextLengthMax = 256;
    /// <summary>Most events in one request.</summary>
    public const int EventsPerRequestMax = 1000;
    /// <summary>Most lines in one reservation.</summary>
    public const int ReservationLinesMax = 100;
    /// <summary>Default reservation time to live (15 minutes).</summary>
    public const int TtlSecondsDefault = 900;
    /// <summary>Longest reservation time to live (7 days).</summary>
    public const int TtlSecondsMax = 7 * 24 * 3600;
    /// <summary>Most locations in a channel's sourcing list.</summary>
    public const int ChannelLocationsMax = 1000;
    /// <summary>Most SKUs in one bulk availability read.</summary>
    public const int BulkSkusMax = 500;
    /// <summary>Most post-count onHand changes remembered per position for late counts.</summary>
    public const int OnHandHistoryMax = 1024;
    /// <summary>Most missing sequence numbers named one by one in a gap exception.</summary>
    public const int GapNumbersListedMax = 20;
    /// <summary>How long event and reservation ids are remembered for idempotency by default.</summary>
    public const int IdempotencyRetentionDaysDefault = 30;
}
