namespace Truestock.Simulation;

/// <summary>What happens at the retailer, independent of how stock is integrated.</summary>
internal enum DemandKind
{
    /// <summary>A customer tries to buy on a channel.</summary>
    Order,
    /// <summary>A customer buys at the store till.</summary>
    PosSale,
    /// <summary>A customer returns a unit to the warehouse.</summary>
    Return,
    /// <summary>A supplier delivery arrives at the warehouse.</summary>
    Delivery,
}

/// <summary>One demand event; the same list drives both integrations.</summary>
internal readonly record struct Demand(int Minute, DemandKind Kind, int Channel, int Sku, int Quantity, bool Damaged);

/// <summary>A selling channel: its sourcing nodes and how long a stock change takes to show there.</summary>
internal sealed record SimChannel(string Id, int[] Nodes, int PublicationDelayMinutes, int BufferUnits, double OrdersPerHour);

/// <summary>
/// The retailer: 5 channels, 3 fulfilment nodes (a warehouse, a DC, a store that ships and has a
/// till), a catalogue with skewed popularity, daily deliveries, returns (30% damaged), and a
/// promotion on day 2 that triples demand. Everything is drawn from one seeded generator.
/// </summary>
internal sealed class Scenario
{
    public static readonly string[] Nodes = ["WH1", "DC1", "S1"];
    public const int Store = 2;
    public const int Warehouse = 0;

    public Scenario(int seed, int days, int skus)
    {
        Seed = seed;
        Days = days;
        Skus = skus;
        Channels =
        [
            new("web", [0, 1, 2], 1, 0, 40),
            new("app", [0, 1, 2], 1, 0, 25),
            new("amazon", [0, 1], 15, 1, 30),
            new("walmart", [1], 30, 1, 12),
            new("b2b", [0], 5, 0, 6),
        ];
        var rng = new Random(seed);
        Weights = Enumerable.Range(0, skus).Select(i => 1.0 / (i + 1)).ToArray();
        var total = Weights.Sum();
        for (var i = 0; i < skus; i++)
        {
            Weights[i] /= total;
        }
        InitialStock = new int[skus, Nodes.Length];
        for (var s = 0; s < skus; s++)
        {
            var scale = Math.Max(1, (int)Math.Round(Weights[s] * skus * 6));
            InitialStock[s, 0] = 6 * scale + rng.Next(0, 4);
            InitialStock[s, 1] = 4 * scale + rng.Next(0, 3);
            InitialStock[s, 2] = 2 * scale + rng.Next(0, 2);
        }
        Demands = Generate(rng);
    }

    public int Seed { get; }
    public int Days { get; }
    public int Skus { get; }
    public int Minutes => Days * 1440;
    public SimChannel[] Channels { get; }
    public double[] Weights { get; }
    public int[,] InitialStock { get; }
    public List<Demand> Demands { get; }

    /// <summary>Demand triples from 10:00 to 22:00 on day 2 (the promotion).</summary>
    public static double PromotionFactor(int minute) => minute / 1440 == 1 && minute % 1440 is >= 600 and < 1320 ? 3.0 : 1.0;

    private List<Demand> Generate(Random rng)
    {
        var list = new List<Demand>();
        for (var minute = 0; minute < Minutes; minute++)
        {
            var hour = minute % 1440 / 60;
            var daytime = hour is >= 8 and < 23 ? 1.0 : 0.25;
            var factor = daytime * PromotionFactor(minute);
            for (var c = 0; c < Channels.Length; c++)
            {
                var n = Poisson(rng, Channels[c].OrdersPerHour / 60.0 * factor);
                for (var i = 0; i < n; i++)
                {
                    list.Add(new Demand(minute, DemandKind.Order, c, PickSku(rng), rng.NextDouble() < 0.85 ? 1 : 2, false));
                }
            }
            if (hour is >= 9 and < 21)
            {
                var pos = Poisson(rng, 10 / 60.0 * PromotionFactor(minute));
                for (var i = 0; i < pos; i++)
                {
                    list.Add(new Demand(minute, DemandKind.PosSale, -1, PickSku(rng), 1, false));
                }
            }
            if (rng.NextDouble() < 4 / 60.0)
            {
                list.Add(new Demand(minute, DemandKind.Return, -1, PickSku(rng), 1, rng.NextDouble() < 0.3));
            }
            if (minute % 1440 == 660)
            {
                for (var s = 0; s < Skus; s++)
                {
                    list.Add(new Demand(minute, DemandKind.Delivery, -1, s, Math.Max(2, InitialStock[s, 0] / 2), false));
                }
            }
        }
        return list;
    }

    private int PickSku(Random rng)
    {
        var x = rng.NextDouble();
        for (var s = 0; s < Skus; s++)
        {
            x -= Weights[s];
            if (x <= 0)
            {
                return s;
            }
        }
        return Skus - 1;
    }

    private static int Poisson(Random rng, double mean)
    {
        // Knuth's method is exact and fast for the small means used here.
        var limit = Math.Exp(-mean);
        var k = 0;
        var p = rng.NextDouble();
        while (p > limit)
        {
            k++;
            p *= rng.NextDouble();
        }
        return k;
    }
}

/// <summary>What one run of the retailer produced.</summary>
internal sealed class Outcome(string name, int hours)
{
    public string Name { get; } = name;
    public long OrdersAccepted { get; set; }
    public long OrdersCancelled { get; set; }
    public long OversoldUnits { get; set; }
    public long LostSalesUnits { get; set; }
    public long UnitsShipped { get; set; }
    public long PosUnitsSold { get; set; }
    public double[] DriftByHour { get; } = new double[hours];

    public double AverageDrift => DriftByHour.Average();
}
