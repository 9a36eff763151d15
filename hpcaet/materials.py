"""The sheet's materials: which 2H monolayers make it, read by every stage.

A specimen is one transition-metal dichalcogenide monolayer (e.g. MoS2) or a lateral
heterojunction of two (the paper's MoS2–WSe2, or WS2–MoSe2, ...). Each material is a
metal, a chalcogen, the in-plane lattice constant and the height of the chalcogen
layers above and below the metal plane. Region 0 of every dataset is the first material
(the host, which fills the phantom's field), region 1 the second; signed distances to
the interface are > 0 in region 1. With two materials their metals differ and so do
their chalcogens: the atoms stage tells the regions apart by the metals' intensity and
the substitutions by the chalcogens'.

The ``materials`` section of the config (``hpcaet/defaults.yaml``) builds a
:class:`Materials`; the per-element cross-sections and B-factors stay in ``species``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcaet.errors import ConfigError

__all__ = ["Material", "Materials", "VACANCY", "PAPER", "METALS", "CHALCOGENS"]

#: Species label of an explicit vacancy site in every dataset.
VACANCY = "vac"
#: Transition metals of the MX2 monolayers, and the chalcogens: what the analysis
#: counts as the middle and the outer layers of a sheet.
METALS = ("Ti", "Zr", "Hf", "V", "Nb", "Ta", "Cr", "Mo", "W", "Re", "Pd", "Pt", "Sn")
CHALCOGENS = ("S", "Se", "Te")


@dataclass(frozen=True)
class Material:
    """One 2H TMD monolayer.

    Attributes
    ----------
    name : str
        Label used in logs, figures and the structure summary (e.g. ``"MoS2"``).
    metal, chalcogen : str
        Chemical symbols.
    lattice_constant : float
        In-plane lattice constant of the bulk-like monolayer [Å].
    chalcogen_height : float
        Height of each chalcogen layer above / below the metal plane [Å].
    """

    name: str
    metal: str
    chalcogen: str
    lattice_constant: float
    chalcogen_height: float

    def __post_init__(self):
        for key in ("lattice_constant", "chalcogen_height"):
            value = getattr(self, key)
            if not value > 0:
                raise ConfigError(
                    f"materials: {key} of {self.name!r} must be > 0 Å; got {value!r}."
                )
        if self.metal not in METALS or self.chalcogen not in CHALCOGENS:
            raise ConfigError(
                f"materials: {self.name!r} needs a transition metal of {list(METALS)} and a "
                f"chalcogen of {list(CHALCOGENS)}; got metal={self.metal!r}, "
                f"chalcogen={self.chalcogen!r}."
            )


@dataclass(frozen=True)
class Materials:
    """The sheet: one material, or two forming a lateral heterojunction.

    Attributes
    ----------
    regions : tuple of Material
        Region 0, then region 1 if any.
    """

    regions: tuple[Material, ...]

    def __post_init__(self):
        if len(self.regions) not in (1, 2):
            raise ConfigError(
                f"materials.regions must list one material or two (a lateral "
                f"heterojunction); got {len(self.regions)}."
            )
        if len(self.regions) == 2:
            a, b = self.regions
            if a.metal == b.metal or a.chalcogen == b.chalcogen or a.name == b.name:
                raise ConfigError(
                    f"materials.regions: the two materials must differ in name, metal and "
                    f"chalcogen (the regions are told apart by the metals' intensity, "
                    f"substitutions by the chalcogens'); got {a.name} ({a.metal}, "
                    f"{a.chalcogen}) and {b.name} ({b.metal}, {b.chalcogen})."
                )

    @property
    def pair(self) -> bool:
        """Whether the sheet is a heterojunction of two materials."""
        return len(self.regions) == 2

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.regions)

    @property
    def metals(self) -> tuple[str, ...]:
        return tuple(m.metal for m in self.regions)

    @property
    def chalcogens(self) -> tuple[str, ...]:
        return tuple(m.chalcogen for m in self.regions)

    @property
    def elements(self) -> tuple[str, ...]:
        """Every element: the metals, then the chalcogens."""
        return self.metals + self.chalcogens

    @property
    def lattice_constants(self) -> tuple[float, ...]:
        return tuple(m.lattice_constant for m in self.regions)

    @property
    def heights(self) -> tuple[float, ...]:
        return tuple(m.chalcogen_height for m in self.regions)

    def region(self, index: int) -> Material:
        """The material of region ``index``; the host for a single material."""
        return self.regions[min(int(index), len(self.regions) - 1)]

    def other(self) -> Material:
        """Region 1's material (region 0's for a single material)."""
        return self.regions[-1]

    def by_brightness(self, cross_section: dict[str, float]) -> tuple[Material, Material]:
        """(darker, brighter) material by their metals' ADF cross-section [Å²]."""
        first, last = self.regions[0], self.regions[-1]
        if cross_section[last.metal] >= cross_section[first.metal]:
            return first, last
        return last, first

    def check_species(self, tables: dict[str, dict[str, float]]) -> None:
        """Every element must have a value in each per-element table (``species``)."""
        for table_name, table in tables.items():
            missing = [e for e in self.elements if e not in table]
            if missing:
                raise ConfigError(
                    f"species.{table_name} lacks {missing} of the materials "
                    f"{list(self.names)}; it has {sorted(table)}. Add a value for each."
                )


#: The paper's MoS2–WSe2 heterojunction (the defaults).
PAPER = Materials(
    regions=(
        Material("MoS2", "Mo", "S", 3.16, 1.56),
        Material("WSe2", "W", "Se", 3.28, 1.67),
    )
)
