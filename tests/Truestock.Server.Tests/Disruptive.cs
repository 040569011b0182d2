namespace Truestock.Server.Tests;

/// <summary>
/// Tests that restart a shared server (PostgreSQL, RabbitMQ) or kill processes under load. xunit
/// runs this collection on its own, after the parallel ones, so no other test sees the outage.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class Disruptive
{
    public const string Name = "Disruptive";
}
