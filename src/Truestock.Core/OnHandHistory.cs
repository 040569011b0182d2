namespace Truestock.Core;

/// <summary>
/// The onHand changes of one position applied after its latest count, sorted by occurredAt.
/// A count that arrives late must add back the movements that happened after it; this keeps
/// exactly those. It is bounded: past <see cref="Limits.OnHandHistoryMax"/> entries the oldest
/// are dropped and their time becomes the horizon, before which no count can be placed exactly.
/// </summary>
internal sealed class OnHandHistory
{
    private long[] _ticks = new long[4];
    private long[] _deltas = new long[4];
    private int _count;

    /// <summary>occurredAt ticks of the newest dropped entry; counts at or before it cannot be placed.</summary>
    public long HorizonTicks { get; private set; } = long.MinValue;

    public int Count => _count;

    public void Add(long occurredTicks, long delta)
    {
        if (_count == Limits.OnHandHistoryMax)
        {
            // An old movement can be inserted at the front after newer ones were dropped; the horizon never moves back.
            HorizonTicks = Math.Max(HorizonTicks, _ticks[0]);
            Array.Copy(_ticks, 1, _ticks, 0, _count - 1);
            Array.Copy(_deltas, 1, _deltas, 0, _count - 1);
            _count--;
        }
        if (_count == _ticks.Length)
        {
            var size = Math.Min(_ticks.Length * 2, Limits.OnHandHistoryMax);
            Array.Resize(ref _ticks, size);
            Array.Resize(ref _deltas, size);
        }
        // Most events arrive in occurredAt order, so the insertion point is usually the end.
        var i = _count;
        while (i > 0 && _ticks[i - 1] > occurredTicks)
        {
            i--;
        }
        if (i < _count)
        {
            Array.Copy(_ticks, i, _ticks, i + 1, _count - i);
            Array.Copy(_deltas, i, _deltas, i + 1, _count - i);
        }
        _ticks[i] = occurredTicks;
        _deltas[i] = delta;
        _count++;
    }

    /// <summary>Sum of the deltas strictly later than <paramref name="ticks"/>.</summary>
    public long SumAfter(long ticks)
    {
        long sum = 0;
        for (var i = _count - 1; i >= 0 && _ticks[i] > ticks; i--)
        {
            sum += _deltas[i];
        }
        return sum;
    }

    /// <summary>Drops entries at or before <paramref name="ticks"/>: no later count can need them.</summary>
    public void DropThrough(long ticks)
    {
        var keepFrom = 0;
        while (keepFrom < _count && _ticks[keepFrom] <= ticks)
        {
            keepFrom++;
        }
        if (keepFrom == 0)
        {
            return;
        }
        Array.Copy(_ticks, keepFrom, _ticks, 0, _count - keepFrom);
        Array.Copy(_deltas, keepFrom, _deltas, 0, _count - keepFrom);
        _count -= keepFrom;
    }

    public IEnumerable<(long Ticks, long Delta)> Entries()
    {
        for (var i = 0; i < _count; i++)
        {
            yield return (_ticks[i], _deltas[i]);
        }
    }

    public static OnHandHistory Restore(long horizonTicks, IEnumerable<(long Ticks, long Delta)> entries)
    {
        var h = new OnHandHistory();
        foreach (var (t, d) in entries)
        {
            h.Add(t, d);
        }
        h.HorizonTicks = Math.Max(h.HorizonTicks, horizonTicks);
        return h;
    }
}
