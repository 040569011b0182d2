namespace Truestock.Core.Tests;

/// <summary><see cref="Shard.OnHandAsOf"/>: onHand at a past time by occurredAt, exact or unknown.</summary>
public sealed class AsOfTests
{
    private readonly World _w = new();

    [Fact]
    public void an_untouched_position_was_zero_at_every_time()
    {
        Assert.Equal(0, _w.Shard.OnHandAsOf("NOPE", "L1", _w.At(-100)));
        Assert.Equal(0, _w.Shard.OnHandAsOf("NOPE", "L9", _w.At(100)));
    }

    [Fact]
    public void movements_after_the_time_are_taken_out_and_those_at_or_before_it_are_kept()
    {
        _w.Stock(10, at: _w.At(0));
        _w.Apply(EventType.Sold, 2, at: _w.At(10));
        _w.Apply(EventType.Sold, 3, at: _w.At(20));

        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(0, _w.Shard.OnHandAsOf("A", "L1", _w.At(-1)));
        Assert.Equal(10, _w.Shard.OnHandAsOf("A", "L1", _w.At(0)));
        Assert.Equal(10, _w.Shard.OnHandAsOf("A", "L1", _w.At(9)));
        Assert.Equal(8, _w.Shard.OnHandAsOf("A", "L1", _w.At(10)));
        Assert.Equal(5, _w.Shard.OnHandAsOf("A", "L1", _w.At(30)));
    }

    [Fact]
    public void the_order_movements_arrive_in_does_not_matter_only_when_they_happened()
    {
        // A store uploads late: the 11:00 sale arrives before the 09:30 one.
        _w.Stock(10, at: _w.At(0));
        _w.Apply(EventType.Sold, 4, at: _w.At(120));
        _w.Apply(EventType.Sold, 1, at: _w.At(30));

        Assert.Equal(9, _w.Shard.OnHandAsOf("A", "L1", _w.At(60)));
        Assert.Equal(5, _w.Shard.OnHandAsOf("A", "L1", _w.At(120)));
    }

    [Fact]
    public void a_count_is_the_truth_from_its_time_on_and_before_it_the_answer_is_unknown()
    {
        _w.Stock(10, at: _w.At(0));
        _w.Apply(EventType.Counted, 7, at: _w.At(60));
        _w.Apply(EventType.Sold, 2, at: _w.At(90));

        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Null(_w.Shard.OnHandAsOf("A", "L1", _w.At(30)));
        Assert.Equal(7, _w.Shard.OnHandAsOf("A", "L1", _w.At(60)));
        Assert.Equal(7, _w.Shard.OnHandAsOf("A", "L1", _w.At(89)));
        Assert.Equal(5, _w.Shard.OnHandAsOf("A", "L1", _w.At(90)));
    }

    [Fact]
    public void a_late_count_adds_back_later_movements_and_as_of_agrees_with_it()
    {
        _w.Stock(10, at: _w.At(0));
        _w.Apply(EventType.Sold, 3, at: _w.At(90));
        // Counted at 60, arriving after the sale at 90: onHand = 8 - 3.
        _w.Apply(EventType.Counted, 8, at: _w.At(60));

        Assert.Equal(5, _w.Pos().OnHand);
        Assert.Equal(8, _w.Shard.OnHandAsOf("A", "L1", _w.At(60)));
        Assert.Equal(8, _w.Shard.OnHandAsOf("A", "L1", _w.At(75)));
        Assert.Equal(5, _w.Shard.OnHandAsOf("A", "L1", _w.At(90)));
    }

    [Fact]
    public void movements_that_only_touch_damaged_or_were_superseded_do_not_move_on_hand_as_of()
    {
        _w.Stock(10, at: _w.At(0));
        _w.Apply(EventType.Counted, 10, at: _w.At(60));
        _w.Apply(EventType.Damaged, 2, at: _w.At(70));
        // Superseded: its onHand effect is inside the count.
        Assert.Equal(EventStatus.Superseded, _w.Apply(EventType.Sold, 1, at: _w.At(50)).Status);

        Assert.Equal(10, _w.Shard.OnHandAsOf("A", "L1", _w.At(65)));
        Assert.Equal(10, _w.Shard.OnHandAsOf("A", "L1", _w.At(80)));
    }

    [Fact]
    public void beyond_the_bounded_movement_memory_the_answer_is_unknown_and_after_it_exact()
    {
        _w.Stock(5_000, at: _w.At(0));
        for (var i = 1; i <= Limits.OnHandHistoryMax + 10; i++)
        {
            _w.Apply(EventType.Sold, 1, at: _w.At(i));
        }

        // The first eleven entries (the receipt and ten sales) were dropped; their newest is at minute 10.
        Assert.Null(_w.Shard.OnHandAsOf("A", "L1", _w.At(5)));
        Assert.Equal(5_000 - 10, _w.Shard.OnHandAsOf("A", "L1", _w.At(10)));
        Assert.Equal(5_000 - 500, _w.Shard.OnHandAsOf("A", "L1", _w.At(500)));
        Assert.Equal(_w.Pos().OnHand, _w.Shard.OnHandAsOf("A", "L1", _w.At(100_000)));
    }

    [Fact]
    public void the_answer_survives_export_and_restore()
    {
        _w.Stock(10, at: _w.At(0));
        _w.Apply(EventType.Sold, 4, at: _w.At(120));

        var restored = Shard.Import(_w.Shard.Export());

        Assert.Equal(10, restored.OnHandAsOf("A", "L1", _w.At(60)));
        Assert.Equal(6, restored.OnHandAsOf("A", "L1", _w.At(120)));
    }
}
