"""Building blocks every panel uses: the text panel, fitting lines to a width, number formats."""
