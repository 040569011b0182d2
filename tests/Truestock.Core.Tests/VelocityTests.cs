using static Truestock.Core.Tests.World;

namespace Truestock.Core.Tests;

/// <summary>Velocity-aware buffers: sales velocity × propagation delay, withheld from the channel.</summary>
public sealed class VelocityTests
{
    private readonly World _w = new();

    private Channel Web => _w.Shard.FindChannel("web")!;

    private void EnableVelocity(double delaySeconds, long maxUnits = 100) =>
        Assert.NotEqual(MasterDataResult.Rejected, _w.Shard.SetVelocity(new ChannelVelocity("web", delaySeconds, maxUnits)).Result);

    [Fact]
    public void velocity_of_a_sku_without_sales_is_zero_and_withholds_nothing()
    {
        EnableVelocity(60);
        _w.Stock(100);

        Assert.Equal(0, _w.Shard.SalesVelocity("A", _w.Now));
        Assert.Equal(100, _w.Shard.Ats(Web, "A", _w.Now));
    }

    [Fact]
    public void sales_raise_the_velocity_and_the_buffer_is_velocity_times_delay_rounded_up()
    {
        EnableVelocity(60);
        _w.Stock(1000);

        // 30 units sold now: rate = 30 / 300 s = 0.1 unit/s; buffer = ceil(0.1 × 60) = 6.
        _w.Apply(EventType.Sold, 30);

        Assert.Equal(0.1, _w.Shard.SalesVelocity("A", _w.Now), 9);
        Assert.Equal(970 - 6, _w.Shard.Ats(Web, "A", _w.Now));
        var b = _w.Shard.BufferOf(Web, "A", _w.Now);
        Assert.Equal((0L, 60.0, 6L, 6L), (b.StaticUnits, b.DelaySeconds, b.VelocityUnits, b.BufferUnits));
    }

    [Fact]
    public void velocity_decays_when_sales_stop()
    {
        EnableVelocity(60);
        _w.Stock(1000);
        _w.Apply(EventType.Sold, 30);

        var later = _w.Now.AddSeconds(Shard.VelocityTimeConstantSeconds);

        Assert.Equal(0.1 / Math.E, _w.Shard.SalesVelocity("A", later), 9);
        Assert.Equal(970 - 3, _w.Shard.Ats(Web, "A", later)); // ceil(0.0368 × 60) = 3
    }

    [Fact]
    public void reservations_count_as_sales()
    {
        EnableVelocity(60);
        _w.Stock(1000);

        Assert.Equal(ReservationResult.Created, _w.Reserve("r1", "web", Line("A", 15)).Result);

        Assert.Equal(0.05, _w.Shard.SalesVelocity("A", _w.Now), 9);
    }

    [Fact]
    public void the_velocity_buffer_is_capped_by_max_units()
    {
        EnableVelocity(3600, maxUnits: 5);
        _w.Stock(1000);
        _w.Apply(EventType.Sold, 300);

        Assert.Equal(700 - 5, _w.Shard.Ats(Web, "A", _w.Now));
    }

    [Fact]
    public void the_static_buffer_is_a_floor_under_the_velocity_buffer()
    {
        _w.Shard.PutChannel(new Channel("web", "Web", ["L1", "L2"], 100, 8, null, null));
        EnableVelocity(60);
        _w.Stock(1000);
        _w.Apply(EventType.Sold, 30); // velocity buffer 6 < static 8

        Assert.Equal(970 - 8, _w.Shard.Ats(Web, "A", _w.Now));
    }

    [Fact]
    public void velocity_buffers_limit_reservations_on_their_channel_only()
    {
        EnableVelocity(60);
        _w.Stock(20);
        _w.Apply(EventType.Sold, 10); // rate 1/30 unit/s; buffer ceil(2) = 2; ATS = 10 − 2

        var tooMuch = _w.Reserve("r1", "web", Line("A", 9));

        Assert.Equal([new Shortage("A", 9, 8)], tooMuch.Shortages!.ToArray());
        Assert.Equal(ReservationResult.Created, _w.Reserve("r2", "web", Line("A", 8)).Result);
    }

    [Fact]
    public void turning_velocity_off_restores_the_static_buffer()
    {
        EnableVelocity(60);
        _w.Stock(1000);
        _w.Apply(EventType.Sold, 30);

        Assert.Equal(MasterDataResult.Updated, _w.Shard.SetVelocity(new ChannelVelocity("web", 0, 0)).Result);

        Assert.Null(_w.Shard.VelocityOf("web"));
        Assert.Equal(970, _w.Shard.Ats(Web, "A", _w.Now));
    }

    [Theory]
    [InlineData(-1.0, 10L)]
    [InlineData(double.NaN, 10L)]
    [InlineData(86_401.0, 10L)]
    [InlineData(60.0, -1L)]
    public void velocity_settings_out_of_range_are_rejected(double delay, long maxUnits)
    {
        var outcome = _w.Shard.SetVelocity(new ChannelVelocity("web", delay, maxUnits));

        Assert.Equal((MasterDataResult.Rejected, RejectionTypes.Validation), (outcome.Result, outcome.ErrorType));
        Assert.Null(_w.Shard.VelocityOf("web"));
    }

    [Fact]
    public void velocities_survive_export_and_import()
    {
        EnableVelocity(60);
        _w.Stock(1000);
        _w.Apply(EventType.Sold, 30);

        var copy = Shard.Import(_w.Shard.Export());

        Assert.Equal(_w.Shard.SalesVelocity("A", _w.Now), copy.SalesVelocity("A", _w.Now));
        Assert.Equal(_w.Shard.Ats(Web, "A", _w.Now), copy.Ats(copy.FindChannel("web")!, "A", _w.Now));
    }
}
