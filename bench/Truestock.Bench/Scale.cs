namespace Truestock.Bench;

/// <summary>
/// The sizes of every scenario. The full sizes keep the whole run under about eight minutes on
/// the 2-core machine; --quick divides them so a developer gets every figure in about a minute
/// and a half. Where a size is below the issue's, docs/performance.md says so.
/// </summary>
public sealed record Scale(bool Quick)
{
    /// <summary>Concurrent buyers in the flash sale and the uniform run (the issue asks for 1,000).</summary>
    public int Buyers => Quick ? 200 : 1000;

    /// <summary>Stock of the hot SKU at each of its three locations.</summary>
    public int FlashUnitsPerLocation => Quick ? 1_500 : 10_000;

    /// <summary>The flash sale ends when stock runs out or after this long, whichever comes first.</summary>
    public TimeSpan FlashCap => TimeSpan.FromSeconds(Quick ? 15 : 45);

    /// <summary>SKUs × locations of the uniform scenario (the issue asks for 100,000 × 20).</summary>
    public int UniformSkus { get; init; } = Quick ? 5_000 : 100_000;

    /// <summary>
    /// SKUs of the uniform scenario on PostgreSQL (× the same locations). The baseline seeds
    /// PostgreSQL at about 3,000 events/s (a round trip per statement), so the 2 million
    /// positions would add over ten minutes of seeding to every run; 400,000 positions keep the
    /// section to a few minutes and still far exceed any cache of hot rows.
    /// </summary>
    public int PostgresUniformSkus => Quick ? 5_000 : 20_000;

    public int UniformLocations => Quick ? 4 : 20;

    public TimeSpan UniformDuration => TimeSpan.FromSeconds(Quick ? 4 : 12);

    /// <summary>Events posted in the ingestion scenario, in batches of 1,000.</summary>
    public int IngestEvents => Quick ? 40_000 : 400_000;

    public TimeSpan ReadDuration => TimeSpan.FromSeconds(Quick ? 3 : 6);

    /// <summary>Ledger records in the generated recovery journal (the issue asks for 10 million).</summary>
    public long RecoveryRecords => Quick ? 500_000 : 10_000_000;

    /// <summary>SKUs of the recovery journal, each at 20 locations (the full size gives the 2 million positions).</summary>
    public int RecoverySkus => Quick ? 5_000 : 100_000;

    /// <summary>Positions in the memory scenario (the issue asks for 2 million).</summary>
    public int MemorySkus => Quick ? 20_000 : 100_000;

    public int MemoryLocations => Quick ? 10 : 20;

    /// <summary>How long the engine-alone and durable in-process loops run.</summary>
    public TimeSpan EngineDuration => TimeSpan.FromSeconds(Quick ? 1 : 3);

    public TimeSpan DurableDuration => TimeSpan.FromSeconds(Quick ? 3 : 8);
}
