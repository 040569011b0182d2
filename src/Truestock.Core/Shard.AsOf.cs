namespace Truestock.Core;

public sealed partial class Shard
{
    /// <summary>
    /// The onHand of a position as of <paramref name="asOf"/>, by occurredAt: the current onHand minus every onHand
    /// change the position applied whose occurredAt is later than <paramref name="asOf"/>, whenever it was recorded.
    /// A movement that happened after a snapshot was taken (in flight when it was taken, or uploaded late) is thus
    /// taken out again, and a late movement that happened before it is counted, so neither shows up as drift.
    /// </summary>
    /// <remarks>
    /// The answer is exact or null ("unknown"); it is never a guess. It is null when <paramref name="asOf"/> is
    /// before the position's latest count (the count replaced what came before it, and the movements before it are
    /// no longer remembered), or at or before the horizon of the position's bounded movement memory
    /// (<see cref="Limits.OnHandHistoryMax"/> entries; older ones are dropped). A position nothing has touched was
    /// 0 at every time. Damaged, inspection and the other quantities are not remembered by time, only onHand.
    /// </remarks>
    /// <param name="sku">The SKU.</param>
    /// <param name="locationId">The location.</param>
    /// <param name="asOf">The time to answer for.</param>
    /// <returns>onHand as of <paramref name="asOf"/>, or null when the hub cannot know it exactly.</returns>
    public long? OnHandAsOf(string sku, string locationId, DateTimeOffset asOf)
    {
        ArgumentNullException.ThrowIfNull(sku);
        ArgumentNullException.ThrowIfNull(locationId);
        var pos = FindPosition(sku, locationId);
        if (pos is null)
        {
            return 0;
        }
        var ticks = asOf.UtcTicks;
        if (pos.CountedAt is { } countedAt && ticks < countedAt.UtcTicks)
        {
            return null;
        }
        if (pos.History is not { } history)
        {
            return pos.OnHand;
        }
        // Every dropped entry is at or before the horizon, so from the horizon on the remembered entries are all
        // the movements there are; a time before it may have had movements after it that were dropped.
        if (history.HorizonTicks != long.MinValue && ticks < history.HorizonTicks)
        {
            return null;
        }
        return pos.OnHand - history.SumAfter(ticks);
    }
}
