using System.Runtime.InteropServices;

namespace Truestock.Core;

/// <summary>
/// Turns a channel's static buffer into one computed per SKU: the SKU's measured sales velocity
/// (units per second, smoothed) times the channel's measured propagation delay (p95 from ledger
/// commit to the channel's acknowledgement). Sales that happen while a change travels to the
/// channel are exactly the units the channel could oversell, so that is what is withheld.
/// </summary>
/// <param name="ChannelId">The channel.</param>
/// <param name="DelaySeconds">The channel's measured p95 propagation delay, in seconds (0 disables the buffer).</param>
/// <param name="MaxUnits">The most units the computed buffer may withhold per SKU.</param>
public sealed record ChannelVelocity(string ChannelId, double DelaySeconds, long MaxUnits);

/// <summary>A SKU's smoothed sales rate, for snapshots.</summary>
/// <param name="Sku">The SKU.</param>
/// <param name="UnitsPerSecond">The rate at <paramref name="AtTicks"/>.</param>
/// <param name="AtTicks">UTC ticks of the last update.</param>
public sealed record SkuVelocityState(string Sku, double UnitsPerSecond, long AtTicks);

/// <summary>The inputs of a channel's buffer for one SKU, as the availability API shows them.</summary>
/// <param name="StaticUnits">The channel's configured bufferUnits.</param>
/// <param name="VelocityUnitsPerSecond">The SKU's smoothed sales velocity now.</param>
/// <param name="DelaySeconds">The channel's propagation delay (p95), or 0 when velocity buffers are off.</param>
/// <param name="VelocityUnits">ceil(velocity × delay), capped at the channel's maximum.</param>
/// <param name="BufferUnits">The buffer applied: the larger of the static and the velocity buffer.</param>
/// <param name="DegradationUnits">Units withheld by the degradation buffer.</param>
public readonly record struct BufferBreakdown(long StaticUnits, double VelocityUnitsPerSecond, double DelaySeconds, long VelocityUnits,
    long BufferUnits, long DegradationUnits);

public sealed partial class Shard
{
    /// <summary>
    /// Time constant of the sales-velocity estimate: an exponentially weighted rate in which a sale
    /// counts fully now and half after about 3.5 minutes, fast enough to see a flash sale start.
    /// </summary>
    public const double VelocityTimeConstantSeconds = 300;

    private readonly Dictionary<string, SkuVelocity> _velocities = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ChannelVelocity> _channelVelocities = new(StringComparer.Ordinal);

    private struct SkuVelocity
    {
        public double Rate;
        public long Ticks;
    }

    /// <summary>The velocity settings of a channel, or null when its buffer is static.</summary>
    public ChannelVelocity? VelocityOf(string channelId) => _channelVelocities.GetValueOrDefault(channelId);

    /// <summary>
    /// Sets or clears (<see cref="ChannelVelocity.DelaySeconds"/> 0) a channel's velocity buffer.
    /// The host measures the delay and journals the change, so replay reproduces every ATS.
    /// </summary>
    public MasterDataOutcome SetVelocity(ChannelVelocity change)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (!_channels.ContainsKey(change.ChannelId))
        {
            return new MasterDataOutcome(MasterDataResult.Rejected, RejectionTypes.UnknownChannel, $"Channel '{change.ChannelId}' is not declared.");
        }
        if (!double.IsFinite(change.DelaySeconds) || change.DelaySeconds < 0 || change.DelaySeconds > 86_400
            || change.MaxUnits < 0 || change.MaxUnits > Limits.QuantityMax)
        {
            return new MasterDataOutcome(MasterDataResult.Rejected, RejectionTypes.Validation,
                $"A velocity buffer needs 0 ≤ delaySeconds ≤ 86400 and 0 ≤ maxUnits ≤ {Limits.QuantityMax}.");
        }
        var existed = _channelVelocities.Remove(change.ChannelId);
        if (change.DelaySeconds > 0 && change.MaxUnits > 0)
        {
            _channelVelocities[change.ChannelId] = change;
        }
        return new MasterDataOutcome(existed ? MasterDataResult.Updated : MasterDataResult.Created);
    }

    /// <summary>The SKU's smoothed sales velocity (units per second) at <paramref name="now"/>.</summary>
    public double SalesVelocity(string sku, DateTimeOffset now)
    {
        if (!_velocities.TryGetValue(sku, out var v))
        {
            return 0;
        }
        var elapsed = Math.Max(0, now.UtcTicks - v.Ticks) / (double)TimeSpan.TicksPerSecond;
        return v.Rate * Math.Exp(-elapsed / VelocityTimeConstantSeconds);
    }

    /// <summary>
    /// Counts a sale (a reservation line, a sale without reservation) in the SKU's velocity. Only
    /// while some channel uses velocity buffers, so that shards without them keep no extra state.
    /// </summary>
    private void RecordSale(string sku, long quantity, DateTimeOffset now)
    {
        if (_channelVelocities.Count == 0 || quantity <= 0)
        {
            return;
        }
        ref var v = ref CollectionsMarshal.GetValueRefOrAddDefault(_velocities, sku, out var exists);
        var ticks = now.UtcTicks;
        var elapsed = exists ? Math.Max(0, ticks - v.Ticks) / (double)TimeSpan.TicksPerSecond : 0;
        v.Rate = (exists ? v.Rate * Math.Exp(-elapsed / VelocityTimeConstantSeconds) : 0) + (quantity / VelocityTimeConstantSeconds);
        v.Ticks = Math.Max(ticks, v.Ticks);
    }

    /// <summary>How a channel's buffer for a SKU is made up at <paramref name="now"/>.</summary>
    public BufferBreakdown BufferOf(Channel channel, string sku, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(channel);
        var share = Share(channel, sku);
        var (velocity, delay, velocityUnits) = VelocityBuffer(channel, sku, now);
        return new BufferBreakdown(channel.BufferUnits, velocity, delay, velocityUnits, Math.Max(channel.BufferUnits, velocityUnits),
            _degradations.Count == 0 ? 0 : DegradationOf(channel.Id).UnitsFor(share));
    }

    private (double Velocity, double Delay, long Units) VelocityBuffer(Channel channel, string sku, DateTimeOffset? now)
    {
        if (_channelVelocities.Count == 0 || !_channelVelocities.TryGetValue(channel.Id, out var settings))
        {
            return (0, 0, 0);
        }
        // Without a time (tests of the static formula) the rate is taken as of the SKU's last sale.
        var velocity = now is { } t ? SalesVelocity(sku, t) : _velocities.TryGetValue(sku, out var v) ? v.Rate : 0;
        var units = (long)Math.Min(settings.MaxUnits, Math.Ceiling(velocity * settings.DelaySeconds - 1e-9));
        return (velocity, settings.DelaySeconds, Math.Max(0, units));
    }
}
