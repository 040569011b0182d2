using static Truestock.Core.Tests.World;

namespace Truestock.Core.Tests;

/// <summary>The degradation buffer of the ATS formula: withheld while a channel is unhealthy, for publication and reservations alike.</summary>
public sealed class DegradationTests
{
    private readonly World _w = new();

    private Channel Web => _w.Shard.FindChannel("web")!;

    private MasterDataOutcome Degrade(long units, int percent, string channel = "web") =>
        _w.Shard.SetDegradation(new ChannelDegradation(channel, units, percent, "test"));

    [Fact]
    public void degradation_units_are_withheld_from_channel_ats()
    {
        _w.Stock(10);

        Assert.Equal(MasterDataResult.Created, Degrade(3, 0).Result);

        Assert.Equal(7, _w.Shard.Ats(Web, "A"));
        Assert.Equal(10, _w.Pos().Available); // the units stay on the shelf, only the channel sees fewer
    }

    [Fact]
    public void degradation_percent_is_taken_from_the_channel_share_rounded_up()
    {
        _w.Shard.PutChannel(new Channel("half", "Half", ["L1"], 50, 1, null, null));
        _w.Stock(21);
        Assert.Equal(9, _w.Shard.Ats(_w.Shard.FindChannel("half")!, "A")); // floor(21 * 50 / 100) - 1

        Degrade(2, 10, "half");

        // share 10, minus buffer 1, minus (2 + ceil(10 * 10 / 100) = 1) = 6
        Assert.Equal(6, _w.Shard.Ats(_w.Shard.FindChannel("half")!, "A"));
    }

    [Fact]
    public void degradation_limits_reservations_through_the_channel()
    {
        _w.Stock(10);
        Degrade(4, 0);

        var tooMuch = _w.Reserve("r1", "web", Line("A", 7));

        Assert.Equal(ReservationResult.Insufficient, tooMuch.Result);
        Assert.Equal([new Shortage("A", 7, 6)], tooMuch.Shortages!.ToArray());
        Assert.Equal(ReservationResult.Created, _w.Reserve("r2", "web", Line("A", 6)).Result);
    }

    [Fact]
    public void degradation_never_makes_ats_negative()
    {
        _w.Stock(2);
        Degrade(5, 50);

        Assert.Equal(0, _w.Shard.Ats(Web, "A"));
    }

    [Fact]
    public void lifting_degradation_restores_the_full_ats()
    {
        _w.Stock(10);
        Degrade(3, 20);
        Assert.Equal(5, _w.Shard.Ats(Web, "A"));

        Assert.Equal(MasterDataResult.Updated, Degrade(0, 0).Result);

        Assert.Equal(10, _w.Shard.Ats(Web, "A"));
        Assert.True(_w.Shard.DegradationOf("web").IsNone);
    }

    [Fact]
    public void degradation_only_affects_its_own_channel()
    {
        _w.Stock(10, location: "L3");
        Degrade(3, 0);

        Assert.Equal(10, _w.Shard.Ats(_w.Shard.FindChannel("pos")!, "A"));
    }

    [Theory]
    [InlineData(-1, 0)]
    [InlineData(0, -1)]
    [InlineData(0, 101)]
    [InlineData(Limits.QuantityMax + 1, 0)]
    public void degradation_out_of_range_is_rejected_and_changes_nothing(long units, int percent)
    {
        _w.Stock(10);

        var outcome = Degrade(units, percent);

        Assert.Equal((MasterDataResult.Rejected, RejectionTypes.Validation), (outcome.Result, outcome.ErrorType));
        Assert.Equal(10, _w.Shard.Ats(Web, "A"));
    }

    [Fact]
    public void degradation_of_an_unknown_channel_is_rejected()
    {
        var outcome = Degrade(1, 0, "nope");

        Assert.Equal((MasterDataResult.Rejected, RejectionTypes.UnknownChannel), (outcome.Result, outcome.ErrorType));
    }

    [Fact]
    public void degradation_survives_export_and_import()
    {
        _w.Stock(10);
        Degrade(3, 10);

        var copy = Shard.Import(_w.Shard.Export());

        Assert.Equal(new DegradationBuffer(3, 10), copy.DegradationOf("web"));
        Assert.Equal(_w.Shard.Ats(Web, "A"), copy.Ats(copy.FindChannel("web")!, "A"));
    }
}
