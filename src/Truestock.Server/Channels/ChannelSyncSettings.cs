using System.Text.Json;

namespace Truestock.Server.Channels;

/// <summary>
/// The publisher's own settings, read from the channel's <c>connector</c> JSON next to the
/// connector's settings: <c>{"kind": ..., "lowStockThreshold": 5, "attemptsMax": 10,
/// "degradation": {"backlogMax": 5000, "lagSecondsMax": 120, "bufferUnits": 2, "bufferPercent": 10}}</c>.
/// </summary>
internal sealed record ChannelSyncSettings(
    long LowStockThreshold,
    int AttemptsMax,
    int BackoffSecondsMax,
    DegradationSettings? Degradation,
    VelocitySettings? Velocity = null)
{
    public const long LowStockThresholdDefault = 0;
    public const int AttemptsMaxDefault = 10;
    public const int AttemptsMaxLimit = 100;
    public const int BackoffSecondsMaxDefault = 300;
    public const int BackoffSecondsMaxLimit = 3600;

    public static ChannelSyncSettings Default { get; } = new(LowStockThresholdDefault, AttemptsMaxDefault, BackoffSecondsMaxDefault, null);

    /// <summary>Reads the settings; the JSON was validated when the channel was declared.</summary>
    public static ChannelSyncSettings Parse(string connectorJson)
    {
        using var doc = JsonDocument.Parse(connectorJson);
        var (settings, error) = Read(doc.RootElement);
        return settings ?? throw new InvalidOperationException($"Stored connector settings are invalid: {error}");
    }

    /// <summary>Returns an error message (naming the field) when the publisher's fields are invalid, or null.</summary>
    public static string? Validate(JsonElement connector) => Read(connector).Error;

    private static (ChannelSyncSettings? Settings, string? Error) Read(JsonElement c)
    {
        var threshold = LowStockThresholdDefault;
        var attempts = AttemptsMaxDefault;
        var backoff = BackoffSecondsMaxDefault;
        DegradationSettings? degradation = null;
        if (c.ValueKind != JsonValueKind.Object)
        {
            return (null, "must be a JSON object.");
        }
        if (!Long(c, "lowStockThreshold", 0, Core.Limits.QuantityMax, ref threshold, out var error)
            || !Int(c, "attemptsMax", 1, AttemptsMaxLimit, ref attempts, out error)
            || !Int(c, "backoffSecondsMax", 1, BackoffSecondsMaxLimit, ref backoff, out error))
        {
            return (null, error);
        }
        if (c.TryGetProperty("degradation", out var d) && d.ValueKind != JsonValueKind.Null)
        {
            if (d.ValueKind != JsonValueKind.Object)
            {
                return (null, "degradation must be an object with backlogMax and/or lagSecondsMax, and bufferUnits and/or bufferPercent.");
            }
            long backlogMax = 0, units = 0;
            int lagSecondsMax = 0, percent = 0;
            if (!Long(d, "backlogMax", 1, 100_000_000, ref backlogMax, out error, "degradation.")
                || !Int(d, "lagSecondsMax", 1, 86_400, ref lagSecondsMax, out error, "degradation.")
                || !Long(d, "bufferUnits", 0, Core.Limits.QuantityMax, ref units, out error, "degradation.")
                || !Int(d, "bufferPercent", 0, 100, ref percent, out error, "degradation."))
            {
                return (null, error);
            }
            if (backlogMax == 0 && lagSecondsMax == 0)
            {
                return (null, "degradation needs a threshold: backlogMax (pending publications) and/or lagSecondsMax (age of the oldest).");
            }
            if (units == 0 && percent == 0)
            {
                return (null, "degradation needs a buffer: bufferUnits and/or bufferPercent.");
            }
            degradation = new DegradationSettings(backlogMax, lagSecondsMax, units, percent);
        }
        VelocitySettings? velocity = null;
        if (c.TryGetProperty("velocityBuffer", out var v) && v.ValueKind != JsonValueKind.Null)
        {
            if (v.ValueKind != JsonValueKind.Object)
            {
                return (null, "velocityBuffer must be an object with maxUnits and optionally delaySecondsInitial.");
            }
            long maxUnits = 0;
            int initial = VelocitySettings.DelaySecondsInitialDefault;
            if (!Long(v, "maxUnits", 1, Core.Limits.QuantityMax, ref maxUnits, out error, "velocityBuffer.")
                || !Int(v, "delaySecondsInitial", 1, 86_400, ref initial, out error, "velocityBuffer."))
            {
                return (null, error);
            }
            if (maxUnits == 0)
            {
                return (null, "velocityBuffer.maxUnits is required: the most units the computed buffer may withhold per SKU.");
            }
            velocity = new VelocitySettings(maxUnits, initial);
        }
        return (new ChannelSyncSettings(threshold, attempts, backoff, degradation, velocity), null);
    }

    private static bool Long(JsonElement o, string name, long min, long max, ref long value, out string? error, string prefix = "")
    {
        error = null;
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return true;
        }
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out var n) || n < min || n > max)
        {
            error = $"{prefix}{name} must be an integer from {min} to {max}.";
            return false;
        }
        value = n;
        return true;
    }

    private static bool Int(JsonElement o, string name, int min, int max, ref int value, out string? error, string prefix = "")
    {
        long n = value;
        if (!Long(o, name, min, max, ref n, out error, prefix))
        {
            return false;
        }
        value = (int)n;
        return true;
    }
}

/// <summary>When a channel counts as degraded, and what is withheld from it then.</summary>
/// <param name="BacklogMax">Pending publications above which the channel is degraded (0 = no backlog threshold).</param>
/// <param name="LagSecondsMax">Age of the oldest pending publication above which it is degraded (0 = none).</param>
/// <param name="BufferUnits">Units withheld per SKU while degraded.</param>
/// <param name="BufferPercent">Percent of the channel's share withheld per SKU while degraded.</param>
internal sealed record DegradationSettings(long BacklogMax, int LagSecondsMax, long BufferUnits, int BufferPercent)
{
    /// <summary>Over a threshold: degrade.</summary>
    public bool IsOver(long backlog, double lagSeconds) =>
        (BacklogMax > 0 && backlog > BacklogMax) || (LagSecondsMax > 0 && lagSeconds > LagSecondsMax);

    /// <summary>
    /// Healthy again only under half of each threshold: the hysteresis keeps a channel hovering
    /// at a threshold from flapping (each flip republishes every SKU of the channel).
    /// </summary>
    public bool IsHealthy(long backlog, double lagSeconds) =>
        (BacklogMax == 0 || backlog <= BacklogMax / 2) && (LagSecondsMax == 0 || lagSeconds <= LagSecondsMax / 2.0);
}

/// <summary>Velocity-aware buffer of a channel: sales velocity × measured propagation delay, capped.</summary>
/// <param name="MaxUnits">The most units withheld per SKU.</param>
/// <param name="DelaySecondsInitial">The delay assumed until enough publications have been measured.</param>
internal sealed record VelocitySettings(long MaxUnits, int DelaySecondsInitial)
{
    public const int DelaySecondsInitialDefault = 60;
}
