namespace Truestock.Core;

/// <summary>
/// The onHand changes of one position applied after its latest count, sorted by occurredAt.
/// A count that arrives late must add back the movements that happened after it; this keeps
/// exactly those. It is bounded: past <see cref="Limits.OnHandHistoryMax"/> entries the oldest
/// are dropped and their time becomes the horizon, before which no count can be placed exactly.
/// </summary>
/// <remarks>
/// Most positions remember one or two movements, and there can be millions of positions, so the
/// entries live in one array of pairs that starts with room for what is first added and doubles
/// when full: a position with one movement costs this object and a one-entry array (about 80 B)
/// rather than an object and two arrays of four longs (about 170 B).
/// </remarks>
internal sealed class OnHandHistory
{
    /// <summary>
    /// Room for one movement: most positions that remember any remember one (a delivery since the
    /// last stock take), and the few that see more grow by doubling at little cost.
    /// </summary>
    private const int InitialCapacity = 1;

    private Entry[] _entries;
    private int _count;

    public OnHandHistory()
        : this(InitialCapacity)
    {
    }

    private OnHandHistory(int capacity)
    {
        _entries = new Entry[capacity];
    }

    /// <summary>occurredAt ticks of the newest dropped entry; counts at or before it cannot be placed.</summary>
    public long HorizonTicks { get; private set; } = long.MinValue;

    public int Count => _count;

    /// <summary>The remembered entries, oldest first.</summary>
    public ReadOnlySpan<Entry> Entries => _entries.AsSpan(0, _count);

    public void Add(long occurredTicks, long delta)
    {
        if (_count == Limits.OnHandHistoryMax)
        {
            // An old movement can be inserted at the front after newer ones were dropped; the horizon never moves back.
            HorizonTicks = Math.Max(HorizonTicks, _entries[0].Ticks);
            Array.Copy(_entries, 1, _entries, 0, _count - 1);
            _count--;
        }
        if (_count == _entries.Length)
        {
            Array.Resize(ref _entries, Math.Min(_entries.Length * 2, Limits.OnHandHistoryMax));
        }
        // Most events arrive in occurredAt order, so the insertion point is usually the end.
        var i = _count;
        while (i > 0 && _entries[i - 1].Ticks > occurredTicks)
        {
            i--;
        }
        if (i < _count)
        {
            Array.Copy(_entries, i, _entries, i + 1, _count - i);
        }
        _entries[i] = new Entry(occurredTicks, delta);
        _count++;
    }

    /// <summary>Sum of the deltas strictly later than <paramref name="ticks"/>.</summary>
    public long SumAfter(long ticks)
    {
        long sum = 0;
        for (var i = _count - 1; i >= 0 && _entries[i].Ticks > ticks; i--)
        {
            sum += _entries[i].Delta;
        }
        return sum;
    }

    /// <summary>Drops entries at or before <paramref name="ticks"/>: no later count can need them.</summary>
    /// <remarks>The array keeps its size, so that the movements after a daily count do not grow it again.</remarks>
    public void DropThrough(long ticks)
    {
        var keepFrom = 0;
        while (keepFrom < _count && _entries[keepFrom].Ticks <= ticks)
        {
            keepFrom++;
        }
        if (keepFrom == 0)
        {
            return;
        }
        Array.Copy(_entries, keepFrom, _entries, 0, _count - keepFrom);
        _count -= keepFrom;
    }

    /// <summary>
    /// Rebuilds a history from a snapshot's parallel arrays (they may come in any order and beyond
    /// the bound, as <see cref="Add"/> would have received them), with an array no larger than they need.
    /// </summary>
    public static OnHandHistory Restore(long horizonTicks, long[] ticks, long[] deltas)
    {
        var n = Math.Min(ticks.Length, deltas.Length);
        var h = new OnHandHistory(Math.Clamp(n, InitialCapacity, Limits.OnHandHistoryMax));
        for (var i = 0; i < n; i++)
        {
            h.Add(ticks[i], deltas[i]);
        }
        h.HorizonTicks = Math.Max(h.HorizonTicks, horizonTicks);
        return h;
    }

    /// <summary>One remembered movement: when it happened and how it changed onHand.</summary>
    internal readonly record struct Entry(long Ticks, long Delta);
}
