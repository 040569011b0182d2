namespace Truestock.Server.Reconciliation;

/// <summary>
/// Reconciliation settings, bound from <c>Truestock:Reconciliation</c> (see docs/reconciliation.md), e.g.
/// <c>--Truestock:Reconciliation:Thresholds:erp:Units=5</c> or
/// <c>--Truestock:Reconciliation:Schedules:nightly-erp:System=erp</c>.
/// </summary>
public sealed class ReconciliationOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Truestock:Reconciliation";

    /// <summary>Largest snapshot body, in bytes; 413 beyond (nothing is kept).</summary>
    public long SnapshotBodyBytesMax { get; set; } = 1024L * 1024 * 1024;

    /// <summary>Most data rows in one snapshot; 413 beyond (nothing is kept).</summary>
    public long SnapshotRowsMax { get; set; } = 5_000_000;

    /// <summary>Longest snapshot row, in bytes; a longer row is a <c>line-too-long</c> problem of that row.</summary>
    public int SnapshotLineBytesMax { get; set; } = 1024;

    /// <summary>
    /// Thresholds by system kind (<c>erp</c>, <c>wms</c>, <c>channel</c>). A variance is over its system's threshold
    /// when it exceeds every limit that is set; a system without an entry treats every variance as over.
    /// </summary>
    public Dictionary<string, ReconciliationThreshold> Thresholds { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Scheduled runs by name (only the writer hub runs them).</summary>
    public Dictionary<string, ReconciliationSchedule> Schedules { get; set; } = new(StringComparer.Ordinal);

    /// <summary>How often the scheduler looks for due schedules.</summary>
    public int SchedulerPollSeconds { get; set; } = 30;
}

/// <summary>The limits under which a variance is only recorded.</summary>
public sealed class ReconciliationThreshold
{
    /// <summary>Units of difference allowed (|reported − expected| ≤ Units is under); 0 allows none.</summary>
    public long Units { get; set; }

    /// <summary>Percent of the expected quantity allowed (|difference| × 100 ≤ Percent × max(|expected|, 1) is under); 0 allows none.</summary>
    public double Percent { get; set; }
}

/// <summary>A scheduled run: every <see cref="IntervalMinutes"/>, the latest snapshot uploaded for the system, if it has not been run yet.</summary>
public sealed class ReconciliationSchedule
{
    /// <summary><c>erp</c>, <c>wms</c> or <c>channel</c>.</summary>
    public string System { get; set; } = "";

    /// <summary>The system's id (for a channel, the channel id).</summary>
    public string SystemId { get; set; } = "";

    /// <summary>Minutes between runs (≥ 1).</summary>
    public int IntervalMinutes { get; set; } = 1440;
}
