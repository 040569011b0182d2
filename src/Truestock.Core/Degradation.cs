namespace Truestock.Core;

/// <summary>
/// Extra units withheld from a channel while the hub's confidence in it is low (publication lag
/// or backlog over the channel's thresholds): <c>degradationBuffer(c)</c> of the inventory model.
/// </summary>
/// <param name="Units">Units withheld per SKU.</param>
/// <param name="Percent">Percent of the channel's share withheld per SKU (rounded up), 0–100.</param>
public readonly record struct DegradationBuffer(long Units, int Percent)
{
    /// <summary>No buffer: the channel is healthy.</summary>
    public static DegradationBuffer None => default;

    /// <summary>True when nothing is withheld.</summary>
    public bool IsNone => Units == 0 && Percent == 0;

    /// <summary>The units withheld from a channel share of <paramref name="share"/> units.</summary>
    public long UnitsFor(long share) => Units + (share <= 0 || Percent == 0 ? 0 : ((share * Percent) + 99) / 100);
}

/// <summary>Payload of a degradation change: the buffer now applied to a channel.</summary>
/// <param name="ChannelId">The channel.</param>
/// <param name="Units">Units withheld (0 lifts the buffer).</param>
/// <param name="Percent">Percent withheld (0 lifts it).</param>
/// <param name="Reason">Why (lag or backlog over the threshold, or healthy again), for the journal.</param>
public sealed record ChannelDegradation(string ChannelId, long Units, int Percent, string Reason);

public sealed partial class Shard
{
    private readonly Dictionary<string, DegradationBuffer> _degradations = new(StringComparer.Ordinal);

    /// <summary>The degradation buffer applied to a channel now (none when healthy).</summary>
    public DegradationBuffer DegradationOf(string channelId) => _degradations.GetValueOrDefault(channelId);

    /// <summary>
    /// Applies or lifts a channel's degradation buffer. The host measures publication health and
    /// journals the change, so that replay reproduces the same ATS (and the same reservation decisions).
    /// </summary>
    public MasterDataOutcome SetDegradation(ChannelDegradation change)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (!_channels.ContainsKey(change.ChannelId))
        {
            return new MasterDataOutcome(MasterDataResult.Rejected, RejectionTypes.UnknownChannel, $"Channel '{change.ChannelId}' is not declared.");
        }
        if (change.Units < 0 || change.Units > Limits.QuantityMax || change.Percent is < 0 or > 100)
        {
            return new MasterDataOutcome(MasterDataResult.Rejected, RejectionTypes.Validation,
                $"A degradation buffer needs 0 ≤ units ≤ {Limits.QuantityMax} and 0 ≤ percent ≤ 100.");
        }
        var buffer = new DegradationBuffer(change.Units, change.Percent);
        var existed = _degradations.ContainsKey(change.ChannelId);
        if (buffer.IsNone)
        {
            _degradations.Remove(change.ChannelId);
        }
        else
        {
            _degradations[change.ChannelId] = buffer;
        }
        return new MasterDataOutcome(existed ? MasterDataResult.Updated : MasterDataResult.Created);
    }
}
